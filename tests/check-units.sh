#!/bin/sh
# check-units.sh: the systemd files are right. "systemd-analyze verify"
# passes on the units, the offline security review of smsgwd.service rates
# it OK or better, and the sysusers.d and tmpfiles.d files do what they say.
# Exits 77 (skipped) where systemd-analyze is absent or cannot run here.
set -u

builddir=${SMSGW_BUILDDIR:-.}
srcdir=${SMSGW_SRCDIR:-.}
service=$builddir/systemd/smsgwd.service
status=0

if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "# skip: systemd-analyze is not installed"
	exit 77
fi
if [ ! -f "$service" ]; then
	echo "not ok - $service is not built"
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-units.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
builddir=$(cd "$builddir" && pwd)

# A unit that is surely right tells whether the tool works here at all.
printf '[Service]\nExecStart=/bin/true\n' >"$tmp/smsgw-probe.service"
if ! systemd-analyze verify --man=no "$tmp/smsgw-probe.service" \
    >"$tmp/probe.out" 2>&1 || [ -s "$tmp/probe.out" ]; then
	echo "# skip: systemd-analyze verify cannot run here:" \
	    "$(head -n 1 "$tmp/probe.out")"
	exit 77
fi
rm -f "$tmp/smsgw-probe.service"

# verify wants ExecStart= to exist: the built daemon stands in for the
# installed one. The man pages are not installed yet either.
sed "s|^ExecStart=[^ ]*/smsgwd |ExecStart=$builddir/smsgwd |" "$service" \
    >"$tmp/smsgwd.service"
cp "$srcdir/systemd/smsgwd.socket" "$tmp/smsgwd.socket"
# It exits 0 on an unknown key, so any word from it is a failure too.
if systemd-analyze verify --man=no "$tmp/smsgwd.service" \
    "$tmp/smsgwd.socket" >"$tmp/verify.out" 2>&1 &&
    [ ! -s "$tmp/verify.out" ]; then
	echo "ok - systemd-analyze verify smsgwd.service smsgwd.socket"
else
	echo "not ok - systemd-analyze verify smsgwd.service smsgwd.socket"
	status=1
fi
sed 's/^/# /' "$tmp/verify.out"

if systemd-analyze --help 2>&1 | grep -q -- '--offline'; then
	systemd-analyze security --offline=yes "$tmp/smsgwd.service" \
	    >"$tmp/security.out" 2>&1
	line=$(grep 'Overall exposure level' "$tmp/security.out")
	echo "# $line"
	case "$line" in
	*" PERFECT"*|*" SAFE"*|*" OK"*)
		echo "ok - systemd-analyze security rates smsgwd.service OK"
		;;
	*)
		echo "not ok - systemd-analyze security: ${line:-no rating}"
		status=1
		;;
	esac
else
	echo "# systemd-analyze has no --offline: no security review"
fi

# The sysusers.d file makes the user and group smsgw in an empty root.
if command -v systemd-sysusers >/dev/null 2>&1; then
	mkdir -p "$tmp/root/etc"
	cp "$srcdir/systemd/smsgwd.sysusers" "$tmp/smsgwd-sysusers.conf"
	if systemd-sysusers --root="$tmp/root" "$tmp/smsgwd-sysusers.conf" \
	    >"$tmp/sysusers.out" 2>&1 &&
	    grep -q '^smsgw:x:[0-9]*:[0-9]*:.*:/var/lib/smsgwd:' \
	    "$tmp/root/etc/passwd" &&
	    grep -q '^smsgw:x:' "$tmp/root/etc/group"; then
		echo "ok - systemd-sysusers makes the user smsgw"
	else
		echo "not ok - systemd-sysusers makes the user smsgw"
		sed 's/^/# /' "$tmp/sysusers.out"
		status=1
	fi

	# Giving files away takes root; elsewhere that part is left out.
	if [ "$(id -u)" -eq 0 ] &&
	    command -v systemd-tmpfiles >/dev/null 2>&1; then
		cp "$srcdir/systemd/smsgwd.tmpfiles" "$tmp/smsgwd-tmpfiles.conf"
		uid=$(sed -n 's/^smsgw:x:\([0-9]*\):.*/\1/p' \
		    "$tmp/root/etc/passwd")
		if systemd-tmpfiles --root="$tmp/root" --create \
		    "$tmp/smsgwd-tmpfiles.conf" >"$tmp/tmpfiles.out" 2>&1 &&
		    [ "$(stat -c %u:%a "$tmp/root/run/smsgwd")" = "$uid:750" ] &&
		    [ "$(stat -c %u:%a "$tmp/root/var/lib/smsgwd")" = \
		    "$uid:700" ]; then
			echo "ok - systemd-tmpfiles makes the directories"
		else
			echo "not ok - systemd-tmpfiles makes the directories"
			sed 's/^/# /' "$tmp/tmpfiles.out"
			status=1
		fi
	fi
fi
exit $status
