#!/usr/bin/env bash
# The exit code of `failpath check` in each situation a CI job meets, shown on a small project (project/).
#
#   0    READY TO SHIP                 1    READY TO DEMO
#   130  interrupted (Ctrl-C)          2    anything else: a usage or configuration error, a user module that
#                                           fails to import or calls sys.exit, an unreadable dataset, a bug
#
# A CI step can therefore gate on the code alone: `failpath check || exit $?` fails the job on 1 and on 2,
# and only 0 ships. Every 2 comes with one line on stderr that names the problem and what to do (no traceback;
# add --debug to see one).
#
# Usage: examples/ci/exit_codes.sh   (FAILPATH=... to run another failpath command than the one on PATH)
# Each situation runs in a scratch copy of project/. The script prints what each one exits with and the
# message it printed, and exits 1 when any code differs from the one expected here.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
read -r -a failpath <<< "${FAILPATH:-failpath}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
wrong=0

fresh() {  # a scratch copy of the project, as the working directory
    cd "$here" && rm -rf "$work/p" && cp -R "$here/project" "$work/p" && cd "$work/p" || exit 2
}

line() {  # line WIDTH: `n` characters of a string made of one repeated character
    printf "%*s" "$1" "" | tr " " "$2"
}

report() {  # report EXPECTED GOT SITUATION
    local mark="ok"
    [ "$2" = "$1" ] || { mark="WRONG"; wrong=1; }
    if grep -q "^Traceback" "$work/err"; then mark="$mark, but printed a traceback"; wrong=1; fi
    printf "%-60s expected %3s  got %3s  %s\n" "$3" "$1" "$2" "$mark"
    local said
    said="$(grep -m1 -E "^error: |READY TO (SHIP|DEMO)|^interrupted|No such option" "$work/err" "$work/out" | sed -E "s/^[^:]*:(error: )?//; s/[│ ]+/ /g")"
    [ -n "$said" ] && printf "    %.150s\n" "$said"
}

expect() {  # expect EXPECTED SITUATION ARGS...: run failpath ARGS in the scratch project
    local expected="$1" situation="$2"
    shift 2
    "${failpath[@]}" "$@" >"$work/out" 2>"$work/err"
    report "$expected" "$?" "$situation"
}

fresh
expect 0 "READY TO SHIP" check --quiet --no-html
fresh
expect 1 "READY TO DEMO (the policy misses the # comment rule)" check demo.toml --quiet --no-html
fresh
rm failpath.toml
expect 2 "no failpath.toml" check --quiet --no-html
fresh
{ echo 'seeed = 1'; cat failpath.toml; } > misspelt.toml
expect 2 "a misspelt key in the config" check misspelt.toml --quiet --no-html
fresh
sed -i.bak 's/"shop:system"/"shop:sytem"/' failpath.toml
expect 2 "the system names an attribute the module lacks" check --quiet --no-html
fresh
sed -i.bak 's/"shop:system"/"shoop:system"/' failpath.toml
expect 2 "the system's module does not exist" check --quiet --no-html
fresh
printf 'def system(text:\n' > shop.py
expect 2 "the system's module has a SyntaxError" check --quiet --no-html
fresh
echo 'raise RuntimeError("SHOP_API_KEY is not set")' >> shop.py
expect 2 "the system's module raises at import" check --quiet --no-html
fresh
printf 'import sys\nsys.exit(0)\n' >> shop.py
expect 2 "the system's module calls sys.exit(0) at import" check --quiet --no-html
fresh
printf 'import sys\nfrom shop import *\n\ndef quitting(text):\n    sys.exit(0)\n' > quitting.py
sed -i.bak 's/"shop:system"/"quitting:quitting"/' failpath.toml
expect 2 "the system calls sys.exit(0) during the run" check --quiet --no-html
fresh
printf 'from shop import *\npolicy = (\n' > guards.py
sed -i.bak 's/"shop:policy"/"guards:policy"/' failpath.toml
expect 2 "the policy's module has a SyntaxError" check --quiet --no-html
fresh
printf 'import shop_judging_helpers\n\ndef same(output, expected):\n    return output == expected\n' > judging.py
sed 's/^judge = "text"$/judge = { name = "function", function = "judging:same" }/' failpath.toml > judge.toml
expect 2 "the judge's module imports a missing package" check judge.toml --quiet --no-html
fresh
rm cases.jsonl
expect 2 "the dataset file is missing" check --quiet --no-html
fresh
printf '\xff\xfe{"id": 1}\n' > cases.jsonl
expect 2 "the dataset is not UTF-8" check --quiet --no-html
fresh
echo '{"id": "x1", "input": "sku 1", "expected": "SKU 1"' >> cases.jsonl
expect 2 "a dataset line is not valid JSON" check --quiet --no-html
fresh
echo "{\"id\": \"x1\", \"input\": \"sku 1\", \"expected\": $(line 100000 '[')$(line 100000 ']')}" >> cases.jsonl
expect 2 "a dataset value nested 100,000 deep" check --quiet --no-html
fresh
echo "{\"id\": \"x1\", \"input\": \"sku 1\", \"expected\": $(line 5000 7)}" >> cases.jsonl
expect 2 "a dataset value holding a 5,000-digit integer" check --quiet --no-html
fresh
expect 2 "an unknown option" check --quiet --no-html --shipit
fresh
expect 2 "an unknown bundled example" check --example adresses --quiet --no-html

fresh
printf 'import time\nfrom shop import *\n\ndef slow(text):\n    time.sleep(0.05)\n    return system(text)\n' > slow.py
sed -i.bak 's/"shop:system"/"slow:slow"/' failpath.toml
echo 'concurrency = 1' | cat - failpath.toml > slow.toml
set -m  # the run gets its own process group, so it receives the SIGINT a Ctrl-C sends
"${failpath[@]}" check slow.toml --quiet --no-html >"$work/out" 2>"$work/err" &
run=$!
set +m
for _ in $(seq 100); do
    [ -d .failpath ] && break
    sleep 0.1
done
sleep 1
kill -INT "$run"
wait "$run"
report 130 $? "Ctrl-C during the run"

exit "$wrong"
