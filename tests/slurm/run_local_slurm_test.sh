#!/usr/bin/env bash
# Live SLURM integration test: the default config through Snakemake's SLURM executor plugin on a
# one-node SLURM cluster on localhost (tests/slurm/start-local-slurm.sh), then failure behaviour.
#
#   tests/slurm/run_local_slurm_test.sh          (as root; installs slurm-wlm + munge if missing)
#
# Exit status: 0 passed, 77 skipped (SLURM cannot be installed or started here), 1 failed.
#
# What it checks
#   main run   every job of the default config (GPU rules asking for 1 GPU, training for 2) ran as
#              a SLURM job: each rule log names its numeric SLURM job id, each GPU rule's log shows
#              the CUDA_VISIBLE_DEVICES that SLURM handed it (N devices for N GPUs), sbatch asked
#              for GPUs once (--gpus=N, no --gres), 2-GPU training launched 2 processes in its one
#              job, every activation store verifies, every pair check passed, no temporary output
#              is left, and a second invocation has nothing to do.
#   failures   (HRSA_SLURM_FAILURE_TESTS=1, default) on an extra, larger probe dataset `big`:
#              F1 a job that fails inside SLURM is reported with its rule log and SLURM log paths;
#              F2 a job frozen mid-write and killed by its 1-minute time limit (SLURM state
#                 TIMEOUT) is reported with its log paths and leaves no store behind;
#              F3 the rerun resumes: only the killed extraction runs again, and its store verifies;
#              F4 Snakemake itself killed (SIGKILL) while two jobs run; one finishes on its own, the
#                 other is cancelled: the next run reports the lock; after --unlock it keeps the
#                 finished store and redoes only the cancelled job.
#
# Environment
#   HRSA_SLURM_WORKDIR         work directory (default: a new /tmp/hrsa-slurm-test.XXXXXX)
#   HRSA_SLURM_RUN_TIMEOUT     seconds allowed per Snakemake invocation (default 900)
#   HRSA_SLURM_FAILURE_TESTS   1 (default) or 0
#   HRSA_SLURM_KEEP_DAEMONS    1: leave the cluster running afterwards (default 0)
#   LOCAL_SLURM_*              passed to start-local-slurm.sh / stop-local-slurm.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/tests/slurm"
VENV=${HRSA_VENV:-$ROOT/.venv}
PY="$VENV/bin/python"
SNAKEMAKE=("$PY" -m snakemake -s "$ROOT/Snakefile")
RUN_TIMEOUT=${HRSA_SLURM_RUN_TIMEOUT:-900}
FAILURE_TESTS=${HRSA_SLURM_FAILURE_TESTS:-1}
export LOCAL_SLURM_STATE=${LOCAL_SLURM_STATE:-/tmp/hrsa-local-slurm}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

T0=$SECONDS
say() { echo "[slurm-test $(date +%T) +$((SECONDS - T0))s] $*"; }
fail() { echo "[slurm-test] FAILED: $*" >&2; exit 1; }

[ -x "$PY" ] || fail "no virtual environment at $VENV (run 'make test' or 'make run' first)"
"$PY" -c "import snakemake_executor_plugin_slurm" 2>/dev/null \
  || fail "snakemake-executor-plugin-slurm is not installed in $VENV"

# ------------------------------------------------------------------ cluster
WORK=${HRSA_SLURM_WORKDIR:-$(mktemp -d /tmp/hrsa-slurm-test.XXXXXX)}
mkdir -p "$WORK/bin"
WE_STARTED=1
if [ -s "$LOCAL_SLURM_STATE/slurmctld.pid" ] && kill -0 "$(cat "$LOCAL_SLURM_STATE/slurmctld.pid")" 2>/dev/null; then
  WE_STARTED=0   # brought up earlier by hand: leave it running
fi
BG_PID=""    # the Snakemake run (its `timeout` process) in flight, stopped by cleanup
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$BG_PID" ] && kill -0 "$BG_PID" 2>/dev/null; then
    say "stopping Snakemake run $BG_PID"
    kill -TERM "$BG_PID" 2>/dev/null
    for _ in $(seq 1 60); do kill -0 "$BG_PID" 2>/dev/null || break; sleep 0.5; done
  fi
  # jobs of this test still queued or running (a failed run may leave some)
  if [ -s "$WORK/run_ids" ] && command -v squeue >/dev/null; then
    while read -r rid; do
      ids=$(squeue -h --name "$rid" -t PENDING,RUNNING,SUSPENDED -o %A 2>/dev/null | tr '\n' ' ')
      # shellcheck disable=SC2086
      [ -z "${ids// }" ] || { say "cancelling leftover jobs $ids"; scancel $ids; }
    done <"$WORK/run_ids"
  fi
  # only the daemons this run started (also after a start that failed half-way)
  if [ "$WE_STARTED" = 1 ] && [ "${HRSA_SLURM_KEEP_DAEMONS:-0}" != 1 ]; then
    "$HERE/stop-local-slurm.sh" || true
  fi
  say "work directory: $WORK (exit $rc)"
}
trap cleanup EXIT
trap 'exit 143' INT TERM

set +e
"$HERE/start-local-slurm.sh"
rc=$?
set -e
if [ $rc = 3 ]; then
  say "SKIPPED: SLURM cannot be installed or started on this machine (see messages above)"
  exit 77
elif [ $rc != 0 ]; then
  fail "start-local-slurm.sh exited with $rc"
fi
T_UP=$((SECONDS - T0))

# sbatch shim: records every submission line that Snakemake generates, then submits it.
REAL_SBATCH=$(command -v sbatch)
cat >"$WORK/bin/sbatch" <<EOF
#!/bin/sh
printf '%s\n' "sbatch \$*" >>"$WORK/sbatch.log"
exec "$REAL_SBATCH" "\$@"
EOF
chmod +x "$WORK/bin/sbatch"
export PATH="$WORK/bin:$VENV/bin:$PATH"

# The default config with every GPU rule asking for GPUs: one for extraction, HRSA, mining and
# evaluation, two for training (one SLURM job, two processes).
"$PY" - "$ROOT/config/config.yaml" "$WORK/config.yaml" "$WORK/config-big.yaml" <<'EOF'
import sys, yaml
src, out, big = sys.argv[1:]
cfg = yaml.safe_load(open(src))
cfg.setdefault("activations", {})["gpus"] = 1
for section, n in (("hrsa", 1), ("evaluation", 1), ("training", 2)):
    if isinstance(cfg.get(section), dict):
        cfg[section]["gpus"] = n
# sort_keys=False: Snakemake compares dict params by their text, key order included
yaml.safe_dump(cfg, open(out, "w"), sort_keys=False)
# failure tests: an extra probe dataset large enough that its extraction takes several seconds
cfg["probe_datasets"]["big"] = {"generator": "topic_sentences", "n": 8000, "labelled": True}
cfg["activations"].update(max_sequences=None, max_tokens=400000)
yaml.safe_dump(cfg, open(big, "w"), sort_keys=False)
EOF

# smk_bg NAME ARGS...: Snakemake through the slurm-local profile, in the background, output in
# $WORK/NAME.log; its `timeout` pid is in BG_PID
smk_bg() {
  local name=$1; shift
  : >"$WORK/$name.log"
  (cd "$ROOT" && exec timeout -k 30 "$RUN_TIMEOUT" "${SNAKEMAKE[@]}" --workflow-profile profiles/slurm-local \
     -d "$WORK" "$@") >>"$WORK/$name.log" 2>&1 &
  BG_PID=$!
}
# run_ids_of NAME: remember the SLURM run id (job name) of a run, for cleanup
run_ids_of() { sed -n 's/.*SLURM run ID: \([^ ]*\).*/\1/p' "$WORK/$1.log" >>"$WORK/run_ids"; }
# submitted NAME: the SLURM job id of the last job the run submitted (empty if none yet)
submitted() { sed -n 's/.*submitted with SLURM jobid \([0-9]*\).*/\1/p' "$WORK/$1.log" | tail -1; }
# smk NAME ARGS...: the same, waiting for it (in the background so that signals reach this script)
smk() {
  local name=$1 rc=0; shift
  smk_bg "$name" "$@"
  wait "$BG_PID" || rc=$?
  BG_PID=""
  run_ids_of "$name"
  return $rc
}
show_tail() { echo "----- last lines of $WORK/$1.log -----" >&2; tail -40 "$WORK/$1.log" >&2; }

# ------------------------------------------------------------------ main run
say "SLURM up after ${T_UP}s; running the default config through the SLURM executor"
T_MAIN0=$SECONDS
smk main --configfile="$WORK/config.yaml" || { show_tail main; fail "main run failed"; }
T_MAIN=$((SECONDS - T_MAIN0))
say "main run finished in ${T_MAIN}s"

"$PY" - "$WORK" <<'EOF' || fail "main run: checks above failed"
import json, re, sys
from pathlib import Path
import yaml
from hrsa.activations import ActivationStore

work = Path(sys.argv[1])
main = (work / "main.log").read_text()
cfg = yaml.safe_load((work / "config.yaml").read_text())
errors = []

submitted = set(re.findall(r"submitted with SLURM jobid (\d+)", main))
for parent, lo, hi in re.findall(r"SLURM job ID (\d+)\. The individual task IDs are (\d+)-(\d+)", main):
    submitted |= {f"{parent}_{i}" for i in range(int(lo), int(hi) + 1)}
if not submitted:
    errors.append("no job was submitted to SLURM")
local_rules = set(re.findall(r"^localrule (\w+):", main, re.M))
remote_rules = set(re.findall(r"^rule (\w+):", main, re.M))

# GPUs per rule, from the sbatch lines Snakemake generated: asked for once, never through --gres
gpus = {}
for line in (work / "sbatch.log").read_text().splitlines():
    head = line.split(" --wrap=")[0]
    rule = re.search(r"--comment rule_(\w+?)(_wildcards_\S*)?( |$)", head).group(1)
    asks = re.findall(r"--gpus=(\d+)", head)
    if len(asks) > 1 or "--gres" in head:
        errors.append(f"{rule}: GPUs requested twice or through --gres: {head}")
    gpus[rule] = int(asks[0]) if asks else 0
if gpus.get("extract_activations") != 1:
    errors.append(f"extract_activations asked for {gpus.get('extract_activations')} GPUs, expected 1")

# the rule log(s) of every job submitted to SLURM, from the job headers in Snakemake's output
rule_logs, current = {}, None
for line in main.splitlines():
    m = re.match(r"(local)?rule (\w+):$", line)
    if m:
        current = None if m.group(1) else m.group(2)
    elif current and re.match(r"\s+log: ", line):
        for path in line.split("log: ", 1)[1].split(", "):
            rule_logs.setdefault(current, set()).add(path.strip())
    elif not line.strip():
        current = None

per_rule = {}
for rule, paths in sorted(rule_logs.items()):
    for path in sorted(paths):
        rel, log = path, work / path
        per_rule[rule] = per_rule.get(rule, 0) + 1
        if not log.is_file():
            errors.append(f"{rel}: missing")
            continue
        text = log.read_text()
        m = re.search(r"job context: host=\S+ slurm_job_id=(\S+) cuda_visible_devices=(\S+)", text)
        if not m:
            errors.append(f"{rel}: no 'job context' line")
            continue
        job, cvd = m.groups()
        if not re.fullmatch(r"\d+(_\d+)?", job):
            errors.append(f"{rel}: not run as a SLURM job (slurm_job_id={job})")
        elif job not in submitted:
            errors.append(f"{rel}: SLURM job {job} is not one that Snakemake submitted")
        n = gpus.get(rule, 0)
        if n and not re.fullmatch(r"\d+(,\d+){%d}" % (n - 1), cvd):
            errors.append(f"{rel}: a {n}-GPU job saw CUDA_VISIBLE_DEVICES={cvd}")
        if rule == "train_embedding" and n > 1 and not re.search(
            rf"launching: .*(nproc_per_node|num_processes) {n}\b", text
        ):
            errors.append(f"{rel}: {n}-GPU training did not launch {n} processes")
queued_small = sorted(r for r in remote_rules if r.startswith("report_") or r == "mteb_table1")
if queued_small:
    errors.append(f"report/table rules submitted to SLURM instead of run locally: {queued_small}")
missing = remote_rules - set(per_rule)
if missing:
    errors.append(f"rules run on SLURM without a rule log to check: {sorted(missing)}")

stores = sorted(p for p in (work / "results/activations").glob("*/*/*") if not p.name.startswith("."))
for p in stores:
    try:
        ActivationStore(p).verify()
    except Exception as exc:  # noqa: BLE001
        errors.append(f"store {p.relative_to(work)}: {exc}")
leftovers = sorted(str(p.relative_to(work)) for p in (work / "results").rglob(".*tmp*"))
if leftovers:
    errors.append(f"temporary outputs left behind: {leftovers}")
checks = sorted((work / "results/checks").rglob("*.json"))
for c in checks:
    if not json.loads(c.read_text()).get("aligned"):
        errors.append(f"pair check not aligned: {c.relative_to(work)}")
if not stores or not checks:
    errors.append(f"{len(stores)} stores, {len(checks)} pair checks")

print(f"[check] {len(submitted)} SLURM jobs; rule logs checked per rule: {per_rule}")
print(f"[check] GPUs per SLURM job by rule: {gpus}")
print(f"[check] local rules (submit host): {sorted(local_rules)}")
print(f"[check] {len(stores)} activation stores verified, {len(checks)} pair checks aligned")
for e in errors:
    print("[check] ERROR:", e)
sys.exit(1 if errors else 0)
EOF

# the sbatch lines, one per rule (the --wrap payload shortened)
"$PY" - "$WORK/sbatch.log" >"$WORK/sbatch-per-rule.txt" <<'EOF'
import re, sys
seen = set()
for line in open(sys.argv[1]):
    head = line.split(" --wrap=")[0].strip()
    rule = re.search(r"--comment rule_(\w+?)(_wildcards_\S*)?( |$)", head).group(1)
    if rule not in seen:
        seen.add(rule)
        print(head + " --wrap=...")
EOF
say "sbatch lines (one per rule):"; sed 's/^/    /' "$WORK/sbatch-per-rule.txt"

smk again --configfile="$WORK/config.yaml" -n || { show_tail again; fail "dry rerun failed"; }
grep -q "Nothing to be done" "$WORK/again.log" || { show_tail again; fail "a second invocation wants to rerun jobs"; }
say "second invocation: nothing to be done"

# ------------------------------------------------------------------ failure behaviour
if [ "$FAILURE_TESTS" = 1 ]; then
  BIG=results/activations/tiny-base/backbone/big
  BIGLOG=logs/extract_activations/tiny-base/backbone/big.log

  # F1: a job that fails inside SLURM (device=cuda on a node without a CUDA driver)
  "$PY" -c "import yaml,sys; c=yaml.safe_load(open(sys.argv[1])); c['device']='cuda'; yaml.safe_dump(c, open(sys.argv[2],'w'), sort_keys=False)" \
    "$WORK/config-big.yaml" "$WORK/config-big-cuda.yaml"
  if smk f1-fail --configfile="$WORK/config-big-cuda.yaml" "$BIG"; then fail "F1: a failing job did not fail the run"; fi
  grep -q "$BIGLOG" "$WORK/f1-fail.log" || { show_tail f1-fail; fail "F1: rule log path not reported"; }
  grep -Eq "logs/slurm/rule_extract_activations/tiny-base_backbone_big/[0-9]+\.log" "$WORK/f1-fail.log" \
    || { show_tail f1-fail; fail "F1: SLURM log path not reported"; }
  [ ! -e "$WORK/$BIG" ] || fail "F1: a failed job left $BIG"
  say "F1 ok: failing SLURM job reported with $BIGLOG and its SLURM log"

  # F2: freeze the extraction while it writes, let SLURM kill it at its 1-minute time limit
  rm -f "$WORK/$BIGLOG"
  smk_bg f2-timeout "$BIG" --configfile="$WORK/config-big.yaml" --set-resources extract_activations:runtime=1
  job=""; frozen=0; end=$((SECONDS + 240))
  while [ $SECONDS -lt $end ] && kill -0 "$BG_PID" 2>/dev/null; do
    [ -n "$job" ] || job=$(submitted f2-timeout)
    if [ -n "$job" ] && compgen -G "$WORK/results/activations/tiny-base/backbone/.big.tmp-*" >/dev/null \
       && grep -q "tiny-base/big:" "$WORK/$BIGLOG" 2>/dev/null; then
      pids=$(scontrol listpids "$job" 2>/dev/null | awk 'NR > 1 && $1 ~ /^[0-9]+$/ { print $1 }')
      # shellcheck disable=SC2086
      [ -n "$pids" ] && kill -STOP $pids 2>/dev/null && frozen=1 && break
    fi
    sleep 0.2
  done
  run_ids_of f2-timeout
  [ "$frozen" = 1 ] || { show_tail f2-timeout; fail "F2: could not catch the extraction while it was writing"; }
  say "F2: SLURM job $job frozen mid-write; waiting for its time limit (60-90 s + KillWait)"
  rc=0; wait "$BG_PID" || rc=$?; BG_PID=""
  [ $rc != 0 ] || fail "F2: a job killed by its time limit did not fail the run"
  state=$(squeue -h -j "$job" -t all -o %T 2>/dev/null || true)
  [ "$state" = TIMEOUT ] || { show_tail f2-timeout; fail "F2: SLURM state of job $job is '$state', expected TIMEOUT"; }
  grep -q "TIMEOUT" "$WORK/f2-timeout.log" || { show_tail f2-timeout; fail "F2: TIMEOUT not reported"; }
  grep -Eq "logs/slurm/rule_extract_activations/tiny-base_backbone_big/$job\.log" "$WORK/f2-timeout.log" \
    || { show_tail f2-timeout; fail "F2: SLURM log path not reported"; }
  grep -q "$BIGLOG" "$WORK/f2-timeout.log" || { show_tail f2-timeout; fail "F2: rule log path not reported"; }
  [ ! -e "$WORK/$BIG" ] || fail "F2: the timed-out job left $BIG"
  [ -z "$(scontrol listpids "$job" 2>/dev/null | awk 'NR > 1')" ] || fail "F2: processes of job $job survived"
  stale=$(cd "$WORK" && compgen -G "results/activations/tiny-base/backbone/.big.tmp-*" || true)
  say "F2 ok: job $job TIMEOUT, reported with its logs, no store at $BIG${stale:+ (partial temp dir left: $stale)}"

  # F3: the rerun resumes (the probe dataset made before the kill is reused)
  smk f3-resume --configfile="$WORK/config-big.yaml" "$BIG" || { show_tail f3-resume; fail "F3: rerun failed"; }
  grep -Eq "^extract_activations +1$" "$WORK/f3-resume.log" || { show_tail f3-resume; fail "F3: extraction not rerun once"; }
  ! grep -Eq "^(probe_data|build_tiny_model) " "$WORK/f3-resume.log" || { show_tail f3-resume; fail "F3: completed jobs were rerun"; }
  "$PY" -c "from hrsa.activations import ActivationStore as S; import sys; S(sys.argv[1]).verify()" "$WORK/$BIG" \
    || fail "F3: resumed store does not verify"
  say "F3 ok: rerun redid only the killed extraction; store verifies"

  # F4: Snakemake itself killed while its two jobs run; one job then finishes on its own, the
  # other is cancelled. After --unlock the rerun keeps the finished store and redoes the other.
  DONE=results/activations/tiny-rlvr/backbone/big
  LOST=results/activations/tiny-sft/backbone/big
  smk_bg f4-killed "$DONE" "$LOST" --configfile="$WORK/config-big.yaml"
  job_done=""; job_lost=""; end=$((SECONDS + 240))
  while [ $SECONDS -lt $end ] && { [ -z "$job_done" ] || [ -z "$job_lost" ]; } && kill -0 "$BG_PID" 2>/dev/null; do
    job_done=$(sed -n 's/.*SLURM jobid \([0-9]*\) (log: .*tiny-rlvr_backbone_big.*/\1/p' "$WORK/f4-killed.log")
    job_lost=$(sed -n 's/.*SLURM jobid \([0-9]*\) (log: .*tiny-sft_backbone_big.*/\1/p' "$WORK/f4-killed.log")
    sleep 0.5
  done
  run_ids_of f4-killed
  [ -n "$job_done" ] && [ -n "$job_lost" ] || { show_tail f4-killed; fail "F4: the two jobs were not submitted"; }
  # SIGKILL Snakemake itself (the child of our `timeout` process): no cleanup, its lock stays
  smk_pid=$(ps -o pid= --ppid "$BG_PID" | tr -d ' ')
  kill -KILL "$smk_pid"; wait "$BG_PID" 2>/dev/null || true; BG_PID=""
  scancel "$job_lost"
  say "F4: Snakemake killed; SLURM job $job_done left running, job $job_lost cancelled"
  end=$((SECONDS + 300)); state=""
  while [ $SECONDS -lt $end ]; do
    state=$(squeue -h -j "$job_done" -t all -o %T 2>/dev/null || true)
    case "$state" in PENDING|RUNNING|CONFIGURING|COMPLETING|"") sleep 1;; *) break;; esac
  done
  [ "$state" = COMPLETED ] || fail "F4: orphaned job $job_done ended in state '$state'"
  if smk f4-locked "$DONE" "$LOST" --configfile="$WORK/config-big.yaml"; then fail "F4: no lock left by the killed run"; fi
  grep -q "cannot be locked" "$WORK/f4-locked.log" || { show_tail f4-locked; fail "F4: unexpected error instead of the lock"; }
  smk f4-unlock --configfile="$WORK/config-big.yaml" --unlock || { show_tail f4-unlock; fail "F4: --unlock failed"; }
  smk f4-rerun "$DONE" "$LOST" --configfile="$WORK/config-big.yaml" || { show_tail f4-rerun; fail "F4: rerun failed"; }
  grep -Eq "^extract_activations +1$" "$WORK/f4-rerun.log" || { show_tail f4-rerun; fail "F4: expected exactly one extraction"; }
  grep -q "output: $LOST" "$WORK/f4-rerun.log" || { show_tail f4-rerun; fail "F4: the cancelled job was not redone"; }
  for s in "$DONE" "$LOST"; do
    "$PY" -c "from hrsa.activations import ActivationStore as S; import sys; S(sys.argv[1]).verify()" "$WORK/$s" \
      || fail "F4: $s does not verify"
  done
  say "F4 ok: lock reported, --unlock; the orphaned job's store kept, the cancelled one redone"

  smk final --configfile="$WORK/config.yaml" -n || { show_tail final; fail "final dry run failed"; }
  grep -q "Nothing to be done" "$WORK/final.log" || { show_tail final; fail "default targets no longer up to date"; }
fi

T_ALL=$((SECONDS - T0))
printf 'slurm_up_s=%s\nmain_run_s=%s\ntotal_s=%s\n' "$T_UP" "$T_MAIN" "$T_ALL" | tee "$WORK/timings"
say "PASSED in ${T_ALL}s (SLURM start ${T_UP}s, default workflow ${T_MAIN}s)"
