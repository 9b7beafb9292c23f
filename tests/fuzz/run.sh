#!/bin/bash
# Builds every libFuzzer target with clang (ASan + UBSan) into $1 (default
# /tmp/smsgw-fuzz), replays the saved regression inputs, then fuzzes each
# target for FUZZ_SECONDS (default 60) on a copy of its seed corpus
# (FUZZ_TARGETS="protocol dlr" picks some by name). Exits
# non-zero when a target fails to build, a regression input fails, or the
# fuzzer finds a crash, leak, timeout or out-of-memory input.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-/tmp/smsgw-fuzz}
secs=${FUZZ_SECONDS:-60}
cc=${CC_FUZZ:-clang}
failed=0

# Leaks in libraries that smsgw cannot free are named in lsan.supp.
LSAN_OPTIONS="suppressions=$here/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
UBSAN_OPTIONS="print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export LSAN_OPTIONS UBSAN_OPTIONS

cflags=(-std=gnu11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
	-Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
	-Wdeclaration-after-statement -Wformat=2
	-I"$root/src" -I"$here")

# name, the longest input to try, the libraries, then the sources.
targets=(
	"protocol|65536|yajl|src/protocol.c src/message.c src/util.c"
	"panacea|16384|yajl libcurl|src/panacea.c"
	"segments|4096||src/message.c"
	"config|8192|libconfig|src/config.c src/log.c src/message.c src/util.c"
	"dlr|8192|libevent libcrypto|src/dlr.c src/log.c src/util.c"
)

if ! command -v "$cc" >/dev/null; then
	echo "fuzz: $cc not found (Debian: apt-get install clang libclang-rt-14-dev)"
	exit 1
fi
mkdir -p "$out" || exit 1

# The lines of a libFuzzer log that say what broke and where, without the
# frames of libFuzzer, the sanitizers and libc.
trace() {
	local keep='^(Running: |==[0-9]+==ERROR|SUMMARY| +#[0-9]+ )'
	local noise='fuzzer::|__sanitizer|__interceptor|libc\.so|nptl/'

	keep="$keep|invariant broken|runtime error"
	noise="$noise|raise\.c|abort\.c"
	grep -E "$keep" "$1" | grep -vE "$noise" | head -n 25
}

# Builds fuzz_NAME; returns 2 when a source it needs is not there yet.
build() {
	local name=$1 pkgs=$2 srcs=$3 s rc flags=() list=()

	for s in $srcs; do
		[ -f "$root/$s" ] || return 2
		list+=("$root/$s")
	done
	if [ -n "$pkgs" ]; then
		# shellcheck disable=SC2207
		flags=($(pkg-config --cflags --libs $pkgs)) || return 1
	fi
	"$cc" "${cflags[@]}" -o "$out/fuzz_$name" "$here/fuzz_$name.c" \
	    "${list[@]}" "${flags[@]}" >"$out/$name.build.log" 2>&1
	rc=$?
	if [ -s "$out/$name.build.log" ]; then
		cat "$out/$name.build.log"
	fi
	return $rc
}

# Runs the saved inputs of NAME once each; each must pass.
regress() {
	local name=$1 files=() rc

	for f in "$here/regress/$name"-*; do
		[ -f "$f" ] && files+=("$f")
	done
	[ ${#files[@]} -eq 0 ] && return 0

	"$out/fuzz_$name" -timeout=5 -rss_limit_mb=1024 "${files[@]}" \
	    >"$out/$name.regress.log" 2>&1
	rc=$?
	if [ $rc -eq 0 ]; then
		echo "regress $name: ${#files[@]} inputs, 0 failed"
		return 0
	fi
	echo "regress $name: ${#files[@]} inputs, a failure (exit $rc):"
	trace "$out/$name.regress.log"
	return 1
}

fuzz() {
	local name=$1 maxlen=$2 corpus="$out/corpus/$name"
	local art="$out/artifacts/$name" log="$out/$name.log"
	local dict=() rc execs inputs found

	rm -rf "$corpus" "$art"
	mkdir -p "$corpus" "$art"
	cp "$here/corpus/$name"/* "$corpus"/
	[ -f "$here/$name.dict" ] && dict=(-dict="$here/$name.dict")

	timeout -k 10 $((secs + 300)) "$out/fuzz_$name" \
	    -max_total_time="$secs" -timeout=5 -rss_limit_mb=1024 \
	    -max_len="$maxlen" -print_final_stats=1 \
	    -artifact_prefix="$art/" "${dict[@]}" "$corpus" >"$log" 2>&1
	rc=$?

	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" |
	    tail -n 1)
	inputs=$(find "$corpus" -type f | wc -l)
	found=$(find "$art" -type f \( -name 'crash-*' -o -name 'leak-*' \
	    -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
	if [ $rc -ne 0 ] && [ "$found" -eq 0 ]; then
		found=1
	fi
	echo "fuzz $name: ${execs:-?} execs, $inputs inputs, $found crashes"
	[ "$found" -eq 0 ] && return 0

	echo "fuzz $name: exit $rc, log $log"
	trace "$log"
	find "$art" -type f \( -name 'crash-*' -o -name 'leak-*' \
	    -o -name 'timeout-*' -o -name 'oom-*' \) |
	    sed 's/^/fuzz '"$name"': input saved as /'
	return 1
}

for t in "${targets[@]}"; do
	IFS='|' read -r name maxlen pkgs srcs <<<"$t"
	case " ${FUZZ_TARGETS:-$name} " in
	*" $name "*) ;;
	*) continue ;;
	esac
	build "$name" "$pkgs" "$srcs"
	rc=$?
	if [ $rc -eq 2 ]; then
		echo "fuzz $name: skipped, a source is missing ($srcs)"
		continue
	fi
	if [ $rc -ne 0 ]; then
		echo "fuzz $name: build failed"
		failed=1
		continue
	fi
	regress "$name" || failed=1
	fuzz "$name" "$maxlen" || failed=1
done

exit $failed
