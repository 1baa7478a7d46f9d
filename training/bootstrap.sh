#!/usr/bin/env bash
# spot-sweep instance bootstrap: run by the SSM "train" document on a GPU instance of a config's
# Auto Scaling group. Phases, each logged with a UTC timestamp and its duration (setup time is money):
#
#   metadata  instance id and region from IMDSv2
#   job       fetch job.json (for its gpus, and its sweep and config: the group's name)
#   driver    wait for the NVIDIA driver (nvidia-smi) up to --driver-timeout seconds
#   python    find a Python whose torch sees CUDA (the Deep Learning AMI's PyTorch venv), or create a
#             venv from a Python >= 3.10 and install the CUDA torch wheels through the wheel cache in
#             the artifact bucket
#   requirements  pip install -r <code-dir>/requirements.txt
#   gpus      torch.cuda.device_count() >= the job's gpus
#   gpu-metrics  start publishing GPU utilisation (for the idle-GPU alarm) now that setup is over
#   run       python -m spot_runner.job --job URI --workdir DIR [--deadline EPOCH_SECONDS], with env
#             $SPOT_SWEEP_ENV_SETUP_PHASES naming DIR/setup-phases.json, the phases above and their seconds,
#             which the runner puts into results.json job.setup
#
# When it ends, with success or failure but never on an interruption (exit 75: spot notice or
# SIGTERM), the instance removes itself from its Auto Scaling group with the desired capacity
# decremented, exactly once, so nothing is left running. A failure before the runner started is
# recorded as FAILED in the job's status.json (python -m spot_runner.job --fail MESSAGE), a scale-in seen
# at the start of a phase as STOPPED (--stopped MESSAGE), with a Python >= 3.10 (the contract package's).
#
# Every termination goes through the group's termination lifecycle hook (names.json lifecycleHooks), which
# holds the instance in Terminating:Wait: a scale-in (an alarm, the budget guard, `spot-sweep stop`), and the
# self-removal itself. So at the end, once the job has uploaded what it had, the bootstrap completes the
# lifecycle action (CONTINUE) when the instance's target lifecycle state is Terminated: at once after a
# scale-in (the runner saw it too and stopped its child), and after the self-removal as soon as the metadata
# says so (up to SPOT_SWEEP_LIFECYCLE_WAIT_SECONDS, default 60; the call tried SPOT_SWEEP_LIFECYCLE_TRIES
# times, default 5). Without that, termination would wait the
# hook's whole heartbeat timeout, billed. The group's name is names.json groupName filled with job.json's
# sweep and config.
#
# --deadline-seconds S is the SSM step's execution timeout (the train document passes its ExecutionTimeout):
# at S seconds the SSM agent SIGKILLs the step's process group, the bootstrap and the runner with it but not
# the trainer (a session of its own), so nothing would upload or remove the instance. The runner gets a
# deadline (--deadline) S - margin seconds after this script starts, and stops the job there like a stop
# request: checkpoint, upload, STOPPED at max runtime, exit 76, removal. The margin, default 600 s or a
# quarter of S when that is less (SPOT_SWEEP_DEADLINE_MARGIN_SECONDS), covers the trainer's grace period
# (100 s), the uploads, the removal and the seconds the document spent before this script started.
#
# Every external command (nvidia-smi, aws, curl, python3 and the candidate Pythons) is resolved
# from PATH or given by env, so tests put stand-ins first on PATH.
#
# Usage: bootstrap.sh --job URI [--code-dir DIR] [--workdir DIR] [--wheel-index URL]
#                     [--wheel-cache s3://bucket/cache/wheels] [--region REGION] [--driver-timeout S]
#                     [--deadline-seconds S]
# Each option has an env equivalent (SPOT_SWEEP_JOB, SPOT_SWEEP_CODE_DIR, SPOT_SWEEP_WORKDIR,
# SPOT_SWEEP_WHEEL_INDEX, SPOT_SWEEP_WHEEL_CACHE, SPOT_SWEEP_REGION, SPOT_SWEEP_DRIVER_TIMEOUT,
# SPOT_SWEEP_DEADLINE_SECONDS);
# options win. Further env: SPOT_SWEEP_PYTHONS (candidate Pythons, space-separated),
# SPOT_SWEEP_VENV_PYTHONS (Pythons to build the torch venv from, first >= 3.10 wins, space-separated),
# SPOT_SWEEP_IMDS_ENDPOINT (default http://169.254.169.254), SPOT_SWEEP_SELF_REMOVE=0 (keep the
# instance, for debugging), SPOT_SWEEP_POLL_SECONDS (driver poll interval, default 5),
# SPOT_SWEEP_CW_AGENT (amazon-cloudwatch-agent-ctl, given the GPU metrics config before the run).
set -euo pipefail

# The exit codes shared with the job runner, from training/contract/names.json (names.sh is generated),
# beside this script in the code bundle.
# shellcheck source=contract/names.sh
. "$(dirname "${BASH_SOURCE[0]}")/contract/names.sh"
EXIT_INTERRUPTED=$SPOT_SWEEP_EXIT_BOOTSTRAP_INTERRUPTED

job_uri=${SPOT_SWEEP_JOB:-}
code_dir=${SPOT_SWEEP_CODE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
workdir=${SPOT_SWEEP_WORKDIR:-}
wheel_index=${SPOT_SWEEP_WHEEL_INDEX:-}
wheel_cache=${SPOT_SWEEP_WHEEL_CACHE:-}
region=${SPOT_SWEEP_REGION:-}
driver_timeout=${SPOT_SWEEP_DRIVER_TIMEOUT:-600}
deadline_seconds=${SPOT_SWEEP_DEADLINE_SECONDS:-}
deadline_margin=${SPOT_SWEEP_DEADLINE_MARGIN_SECONDS:-}
lifecycle_wait=${SPOT_SWEEP_LIFECYCLE_WAIT_SECONDS:-60}
# How many times the termination lifecycle action is tried (poll_seconds x 1, 2, ... apart).
lifecycle_tries=${SPOT_SWEEP_LIFECYCLE_TRIES:-5}
poll_seconds=${SPOT_SWEEP_POLL_SECONDS:-5}
imds=${SPOT_SWEEP_IMDS_ENDPOINT:-http://169.254.169.254}
self_remove_enabled=${SPOT_SWEEP_SELF_REMOVE:-1}
cw_agent=${SPOT_SWEEP_CW_AGENT:-/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl}
# The PyTorch venv of the Deep Learning OSS Nvidia Driver AMI GPU PyTorch 2.x is /opt/pytorch
# (`source /opt/pytorch/bin/activate`); older conda-based DLAMIs keep it in /opt/conda/envs/pytorch.
# @see https://docs.aws.amazon.com/dlami/latest/devguide/appendix-ami-release-notes.html
pythons=${SPOT_SWEEP_PYTHONS:-/opt/pytorch/bin/python /opt/conda/envs/pytorch/bin/python python3}
# The Pythons a venv may be built from (first >= 3.10 wins): the python phase's torch venv, and the Python
# record_outcome reports a failure with. The Amazon Linux 2 base DLAMI (the V100 path) has /usr/bin/python3.10.
venv_pythons=${SPOT_SWEEP_VENV_PYTHONS:-python3.12 python3.11 python3.10 /usr/bin/python3.10 python3}

usage() {
  echo "usage: bootstrap.sh --job URI [--code-dir DIR] [--workdir DIR] [--wheel-index URL]" \
    "[--wheel-cache s3://bucket/cache/wheels] [--region REGION] [--driver-timeout SECONDS]" \
    "[--deadline-seconds SECONDS]" >&2
  exit "$SPOT_SWEEP_EXIT_BOOTSTRAP_BAD_INPUT"
}

while [ $# -gt 0 ]; do
  case $1 in
    --job) job_uri=${2:-}; shift 2 ;;
    --code-dir) code_dir=${2:-}; shift 2 ;;
    --workdir) workdir=${2:-}; shift 2 ;;
    --wheel-index) wheel_index=${2:-}; shift 2 ;;
    --wheel-cache) wheel_cache=${2:-}; shift 2 ;;
    --region) region=${2:-}; shift 2 ;;
    --driver-timeout) driver_timeout=${2:-}; shift 2 ;;
    --deadline-seconds) deadline_seconds=${2:-}; shift 2 ;;
    -h | --help) usage ;;
    *) echo "bootstrap.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
[ -n "$job_uri" ] || { echo "bootstrap.sh: --job URI (or SPOT_SWEEP_JOB) is required" >&2; usage; }
case ${deadline_seconds}:${deadline_margin} in
  *[!0-9:]*) echo "bootstrap.sh: --deadline-seconds '$deadline_seconds' (SPOT_SWEEP_DEADLINE_SECONDS) and" \
    "SPOT_SWEEP_DEADLINE_MARGIN_SECONDS '$deadline_margin' must be whole seconds" >&2; usage ;;
esac

if [ -z "$workdir" ]; then
  # The instance-store NVMe of the DLAMI when there is one, else the root volume.
  if [ -d /opt/dlami/nvme ]; then workdir=/opt/dlami/nvme/spot-sweep; else workdir=/var/tmp/spot-sweep; fi
fi
mkdir -p "$workdir"

phase=setup
phase_started=$SECONDS
phase_started_at=""
# Each phase's name and seconds, for the job runner to put into results.json job.setup (plan's setup minutes
# are calibrated from them): written after every phase, handed over in the run phase.
phases_file="$workdir/setup-phases.json"
phases_json=""
python=""
instance_id=""
runner_pid=""
runner_started=0
removed=0
fail_reason=""
stopped_reason=""
group=""
job_deadline=""

log() {
  printf '[bootstrap %s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"
}

begin() {
  phase=$1
  phase_started=$SECONDS
  phase_started_at=$(date +%s.%N)
  log "phase $phase: start"
}

done_phase() {
  local seconds
  log "phase $phase: done in $((SECONDS - phase_started)) s"
  # Milliseconds ($SECONDS counts whole ones); LC_ALL=C keeps awk's decimal point a point for JSON.
  seconds=$(LC_ALL=C awk -v a="$phase_started_at" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
  phases_json="${phases_json:+$phases_json,}{\"name\": \"$phase\", \"seconds\": $seconds}"
  # A timing that cannot be written costs the figures, never the job.
  { printf '{"phases": [%s]}\n' "$phases_json" >"$phases_file.tmp" && mv "$phases_file.tmp" "$phases_file"; } 2>/dev/null ||
    log "warning: $phases_file not written; results.json will lack the bootstrap's phase times"
  # A scale-in (an alarm, the budget guard, spot-sweep stop) can come while the instance is still setting up,
  # before the runner polls for it: the termination lifecycle hook holds the instance only for its heartbeat,
  # so at the end of each phase from the job phase on (when the group's name is known) the bootstrap
  # stops, records STOPPED and completes the action instead of starting a job.
  if [ -n "$instance_id" ] && [ -n "$group" ] && [ "$(target_lifecycle_state)" = Terminated ]; then
    stopped_reason="Stopped by a scale-in: the Auto Scaling group began terminating this instance during the bootstrap's '$phase' phase, before the job started (an alarm, the budget guard, spot-sweep stop or the desired capacity lowered by hand). Run spot-sweep start to run it again."
    log "$stopped_reason"
    exit "$SPOT_SWEEP_EXIT_BOOTSTRAP_STOPPED"
  fi
}

fail() {
  fail_reason=$1
  log "error: $1"
  exit "$SPOT_SWEEP_EXIT_BOOTSTRAP_FAILED"
}

imds_token() {
  # IMDSv2: PUT /latest/api/token with the TTL header, then send the token with every GET.
  # @see https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-service.html
  curl -sSf --max-time 2 -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 300" "$imds/latest/api/token"
}

imds_get() {
  curl -sSf --max-time 2 -H "X-aws-ec2-metadata-token: $1" "$imds/latest/meta-data/$2"
}

# shellcheck disable=SC2317 # reached through the EXIT/TERM traps
target_lifecycle_state() {
  # Empty when the item is absent (not an Auto Scaling instance) or IMDS does not answer.
  # @see https://docs.aws.amazon.com/autoscaling/ec2/userguide/retrieving-target-lifecycle-state-through-imds.html
  local token
  token=$(imds_token 2>/dev/null) || return 0
  imds_get "$token" autoscaling/target-lifecycle-state 2>/dev/null || true
}

# shellcheck disable=SC2317 # reached through the EXIT/TERM traps
complete_lifecycle() {
  if [ -z "$group" ] || [ -z "$instance_id" ] || [ -z "$region" ]; then
    log "lifecycle action: not completed (group '${group}', instance '${instance_id}', region '${region}'" \
      "unknown); termination goes on after the hook's heartbeat timeout"
    return 0
  fi
  # CONTINUE ends the wait at once; the hook's heartbeat timeout and default result apply otherwise.
  # @see https://docs.aws.amazon.com/cli/latest/reference/autoscaling/complete-lifecycle-action.html
  log "lifecycle action: completing $SPOT_SWEEP_LIFECYCLE_HOOK_TERMINATION for $instance_id in $group (CONTINUE)"
  # The metadata may read Terminated a moment before the instance is in Terminating:Wait, when the call still
  # finds no action to complete: a few tries, a little further apart each time, before the hook's heartbeat
  # (10 minutes, billed) is left to end it.
  local attempt
  for attempt in $(seq 1 "$lifecycle_tries"); do
    if aws autoscaling complete-lifecycle-action --lifecycle-hook-name "$SPOT_SWEEP_LIFECYCLE_HOOK_TERMINATION" \
      --auto-scaling-group-name "$group" --instance-id "$instance_id" --lifecycle-action-result CONTINUE \
      --region "$region"; then
      return 0
    fi
    [ "$attempt" -eq "$lifecycle_tries" ] || sleep $((poll_seconds * attempt))
  done
  log "lifecycle action: $lifecycle_tries calls failed; termination goes on after the hook's heartbeat timeout"
}

# shellcheck disable=SC2317 # reached through the EXIT/TERM traps
wait_for_termination() {
  # TerminateInstanceInAutoScalingGroup returns before the group moves the instance to Terminating:Wait.
  local state until=$((SECONDS + lifecycle_wait))
  while state=$(target_lifecycle_state); [ "$state" != Terminated ]; do
    if [ -z "$state" ]; then
      log "lifecycle action: no target lifecycle state in the instance metadata; nothing to complete"
      return 1
    fi
    if [ "$SECONDS" -ge "$until" ]; then
      log "lifecycle action: the target lifecycle state is still '$state' after $lifecycle_wait s; not completed"
      return 1
    fi
    sleep "$poll_seconds"
  done
}

# shellcheck disable=SC2317 # reached through the EXIT/TERM traps
self_remove() {
  [ "$removed" -eq 0 ] || return 1
  removed=1
  if [ "$self_remove_enabled" = "0" ]; then
    log "self-removal: skipped (SPOT_SWEEP_SELF_REMOVE=0)"
    return 1
  fi
  if [ -z "$instance_id" ] || [ -z "$region" ]; then
    log "self-removal: impossible without instance id and region from IMDS; the ASG alarms will scale it in"
    return 1
  fi
  # Decrementing the desired capacity keeps the group from launching a replacement.
  # @see https://docs.aws.amazon.com/cli/latest/reference/autoscaling/terminate-instance-in-auto-scaling-group.html
  log "self-removal: terminating $instance_id in its Auto Scaling group (desired capacity - 1)"
  if ! aws autoscaling terminate-instance-in-auto-scaling-group --instance-id "$instance_id" \
    --should-decrement-desired-capacity --region "$region"; then
    log "self-removal: the call failed; the idle-GPU and max-runtime alarms remain"
    return 1
  fi
}

# shellcheck disable=SC2317 # reached through the EXIT/TERM traps
remove_instance() {
  # Every termination, this one included, waits in the termination lifecycle hook until it is completed:
  # "all launches and terminations, whether initiated automatically or manually (such as by calling the
  # SetDesiredCapacity or TerminateInstanceInAutoScalingGroup operations)".
  # @see https://docs.aws.amazon.com/autoscaling/ec2/userguide/lifecycle-hooks.html
  if [ "$(target_lifecycle_state)" = Terminated ]; then
    log "self-removal: the Auto Scaling group is already terminating this instance (a scale-in)"
    complete_lifecycle
  elif self_remove && wait_for_termination; then
    complete_lifecycle
  fi
}

# shellcheck disable=SC2317 # reached through the EXIT/TERM traps
record_outcome() {
  # record_outcome --fail|--stopped MESSAGE: the job runner records it in status.json. It needs Python >= 3.10
  # (the contract package), which a plain python3 may not be (3.7 on Amazon Linux 2): the Pythons the
  # python phase would use are tried first.
  local option=$1 message=$2 py=$python candidate
  if [ -z "$py" ]; then
    for candidate in $pythons $venv_pythons; do
      command -v "$candidate" >/dev/null 2>&1 || continue
      if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then py=$candidate; break; fi
    done
  fi
  if [ -z "$py" ]; then
    log "no Python >= 3.10 on this instance: the job's status.json does not record this ending"
    return 0
  fi
  PYTHONPATH="$code_dir${PYTHONPATH:+:$PYTHONPATH}" "$py" -m spot_runner.job --job "$job_uri" "$option" "$message" ||
    log "could not record the ending in the job's status.json"
}

# shellcheck disable=SC2317 # reached through the EXIT/TERM traps
on_exit() {
  local rc=$?
  trap - EXIT
  if [ "$rc" -eq "$EXIT_INTERRUPTED" ] && [ "$(target_lifecycle_state)" = Terminated ]; then
    log "interrupted while the Auto Scaling group terminates this instance: the checkpoint is saved"
    complete_lifecycle
  elif [ "$rc" -eq "$EXIT_INTERRUPTED" ]; then
    log "interrupted: the instance stays in its group so a replacement resumes the job (no self-removal)"
  elif [ "$rc" -eq "$SPOT_SWEEP_EXIT_BOOTSTRAP_BUSY" ]; then
    log "another job runner holds this job on this instance; leaving it (and the instance) alone"
  elif [ "$rc" -eq "$SPOT_SWEEP_EXIT_BOOTSTRAP_STOPPED" ]; then
    if [ "$runner_started" -eq 0 ] && [ -n "$stopped_reason" ]; then
      record_outcome --stopped "$stopped_reason"
    else
      log "stopped on request, at the deadline or by a scale-in: the checkpoint is saved and nothing" \
        "resumes; removing the instance"
    fi
    remove_instance
  else
    if [ "$rc" -ne 0 ] && [ "$runner_started" -eq 0 ]; then
      local message="bootstrap failed in phase '$phase' after $((SECONDS - phase_started)) s (exit $rc)"
      [ -z "$fail_reason" ] || message="$message: $fail_reason"
      log "$message"
      record_outcome --fail "Instance bootstrap: $message. See the instance's SSM command output."
    fi
    remove_instance
  fi
  log "bootstrap finished with exit $rc after $SECONDS s"
  exit "$rc"
}

# shellcheck disable=SC2317 # reached through the EXIT/TERM traps
on_term() {
  log "received SIGTERM/SIGINT"
  if [ -n "$runner_pid" ]; then
    kill -TERM "$runner_pid" 2>/dev/null || true
  else
    exit "$EXIT_INTERRUPTED"
  fi
}

# One bootstrap per instance. State Manager runs the document again on every instance of the group
# when the association changes (a new code bundle, a new job.json) while the first run may still be
# training: the later run leaves the job alone and exits before any trap could remove the instance.
# @see https://docs.aws.amazon.com/systems-manager/latest/userguide/state-manager-about.html
exec {lock_fd}>"$workdir/.bootstrap.lock"
if ! flock -n "$lock_fd"; then
  log "another bootstrap is already running this job on this instance; leaving it to finish"
  exit "$SPOT_SWEEP_EXIT_BOOTSTRAP_OK"
fi

trap on_exit EXIT
trap on_term TERM INT

log "spot-sweep bootstrap: job $job_uri, code $code_dir, workdir $workdir"
if [ -n "$deadline_seconds" ]; then
  [ -n "$deadline_margin" ] || deadline_margin=$((deadline_seconds / 4 < 600 ? deadline_seconds / 4 : 600))
  job_deadline=$(($(date +%s) + deadline_seconds - deadline_margin))
  log "deadline: the job stops at $(date -u -d "@$job_deadline" +%Y-%m-%dT%H:%M:%SZ), $deadline_margin s" \
    "before the SSM step's execution timeout of $deadline_seconds s"
fi

begin metadata
if token=$(imds_token); then
  instance_id=$(imds_get "$token" instance-id || true)
  [ -n "$region" ] || region=$(imds_get "$token" placement/region || true)
  log "instance $instance_id ($(imds_get "$token" instance-type || echo unknown)) in $region"
else
  log "warning: IMDS ($imds) did not answer; no self-removal is possible"
fi
done_phase

# Before the driver wait (up to --driver-timeout): the group name it yields is what a termination lifecycle
# action is completed in, should the instance be removed while the driver is still coming up.
begin job
job_file="$workdir/job.json"
case $job_uri in
  # Sweep stacks deliver job.json as an SSM parameter that CloudFormation writes.
  "$SPOT_SWEEP_JOB_URI_SSM"*) aws ssm get-parameter --name "${job_uri#"$SPOT_SWEEP_JOB_URI_SSM"}" --query Parameter.Value --output text \
    ${region:+--region "$region"} >"$job_file" ;;
  s3://*) aws s3 cp --only-show-errors "$job_uri" "$job_file" ;;
  file://*) cp "${job_uri#file://}" "$job_file" ;;
  *) cp "$job_uri" "$job_file" ;;
esac
# The group the termination lifecycle action is completed in: names.json groupName for this job.
if parts=$(python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(d["sweep"], d["config"])' \
  "$job_file" 2>/dev/null); then
  group=${SPOT_SWEEP_GROUP_NAME/\{sweep\}/${parts% *}}
  group=${group/\{config\}/${parts#* }}
else
  log "job.json has no readable sweep and config; the job runner reports what is wrong with it"
fi
done_phase

begin driver
deadline=$((SECONDS + driver_timeout))
until gpu_list=$(nvidia-smi -L 2>&1); do
  if [ "$SECONDS" -ge "$deadline" ]; then
    fail "the NVIDIA driver did not answer within $driver_timeout s (nvidia-smi: ${gpu_list:-no output})"
  fi
  sleep "$poll_seconds"
done
log "GPUs: $(printf '%s' "$gpu_list" | tr '\n' ';')"
compute_cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | sort -n | head -n 1 || true)
done_phase

begin python
probe='import torch; print(torch.__version__, torch.cuda.device_count() if torch.cuda.is_available() else 0)'
for candidate in $pythons; do
  command -v "$candidate" >/dev/null 2>&1 || continue
  if found=$("$candidate" -c "$probe" 2>/dev/null) && [ "${found##* }" -gt 0 ]; then
    python=$(command -v "$candidate")
    log "using $python: torch ${found% *} sees ${found##* } CUDA device(s)"
    break
  fi
  log "$candidate: no torch with CUDA (${found:-torch not importable})"
done
if [ -z "$python" ]; then
  if [ -z "$wheel_index" ]; then
    # cu126 is the last CUDA build of PyTorch with Volta (sm_70, V100 on p3) kernels; cu128 covers
    # Turing (7.5) and newer. @see https://github.com/pytorch/pytorch/blob/main/RELEASE.md
    # (PyTorch CUDA support matrix; Volta left cu128 in 2.11: pytorch/pytorch#175253)
    if [ -n "$compute_cap" ] && awk -v c="$compute_cap" 'BEGIN { exit !(c < 7.5) }'; then
      wheel_index=https://download.pytorch.org/whl/cu126
    else
      wheel_index=https://download.pytorch.org/whl/cu128
    fi
  fi
  tag=${wheel_index%/}
  tag=${tag##*/}
  wheels="$workdir/wheels/$tag"
  venv="$workdir/venv-$tag"
  mkdir -p "$wheels"
  # The venv needs a Python the runner and current torch wheels support (>= 3.10); a plain python3 may be
  # older. The Amazon Linux 2 base DLAMI (the V100 path) names /usr/bin/python3.10 as its Python.
  # @see https://docs.aws.amazon.com/dlami/latest/devguide/aws-deep-learning-ami-base-aml2-2026-01-02.html
  venv_python=""
  seen=""
  for candidate in $venv_pythons; do
    command -v "$candidate" >/dev/null 2>&1 || continue
    if version=$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2]); sys.exit(sys.version_info < (3, 10))' 2>/dev/null); then
      venv_python=$(command -v "$candidate")
      log "building the venv with $venv_python (Python $version)"
      break
    fi
    seen="$seen $candidate (${version:-no version})"
  done
  if [ -z "$venv_python" ]; then
    fail "no Python >= 3.10 to build the torch venv from (tried $venv_pythons; found:${seen:- none}); use an AMI that has one (the Deep Learning AMIs do), install python3.10 or newer, or name one in SPOT_SWEEP_VENV_PYTHONS"
  fi
  log "creating $venv and installing torch from $wheel_index (compute capability ${compute_cap:-unknown})"
  "$venv_python" -m venv "$venv"
  if [ -n "$wheel_cache" ]; then
    aws s3 sync --only-show-errors "${wheel_cache%/}/$tag/" "$wheels/" || log "warning: wheel cache not readable"
  fi
  if "$venv/bin/python" -m pip install --quiet --no-index --find-links "$wheels" torch; then
    log "torch installed from the wheel cache"
  else
    log "wheel cache empty or incomplete: downloading torch from $wheel_index"
    "$venv/bin/python" -m pip download --quiet --dest "$wheels" --index-url "$wheel_index" torch
    "$venv/bin/python" -m pip install --quiet --no-index --find-links "$wheels" torch
    if [ -n "$wheel_cache" ]; then
      aws s3 sync --only-show-errors "$wheels/" "${wheel_cache%/}/$tag/" ||
        log "warning: wheel cache not written; the next instance downloads again"
    fi
  fi
  found=$("$venv/bin/python" -c "$probe") || fail "torch from $wheel_index does not import"
  [ "${found##* }" -gt 0 ] || fail "torch ${found% *} from $wheel_index sees no CUDA device"
  python="$venv/bin/python"
fi
done_phase

begin requirements
"$python" -m pip install --quiet -r "$code_dir/requirements.txt"
done_phase

begin gpus
wanted=$("$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["gpus"])' "$job_file" 2>/dev/null || true)
have=${found##* }
if [ -z "$wanted" ]; then
  log "job.json has no readable gpus; the job runner reports what is wrong with it"
elif [ "$have" -lt "$wanted" ]; then
  fail "the job asks for gpus=$wanted but torch.cuda.device_count() is $have on this instance"
else
  log "the job asks for $wanted GPU(s); CUDA sees $have"
fi
done_phase

begin gpu-metrics
# GPU utilisation goes to CloudWatch only once the job's child starts, aggregated by Auto Scaling group:
# the idle-GPU alarm treats missing data as not breaching, so setup (driver, wheels) and the runner's own
# downloads (data, checkpoints, code) can never look like an idle GPU. This phase writes the agent config
# and hands it to the job runner (SPOT_SWEEP_CW_AGENT, SPOT_SWEEP_GPU_METRICS_CONFIG), which appends it
# right before it starts the child (spot_runner/gpu_metrics.py). The metric is CWAgent
# nvidia_smi_utilization_gpu {AutoScalingGroupName}: the instance's user data (ConfigFleet) already set the namespace and the dimensions; repeating them
# in an appended config breaks the agent's merge, so this file holds only what to collect.
# @see https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch-Agent-NVIDIA-GPU.html
if [ -x "$cw_agent" ]; then
  metrics_config="$workdir/cloudwatch-gpu-metrics.json"
  cat >"$metrics_config" <<'GPU_METRICS'
{
  "metrics": {
    "metrics_collected": {
      "nvidia_gpu": { "measurement": ["utilization_gpu", "memory_used", "memory_total"], "metrics_collection_interval": 60 }
    }
  }
}
GPU_METRICS
  export SPOT_SWEEP_CW_AGENT="$cw_agent" SPOT_SWEEP_GPU_METRICS_CONFIG="$metrics_config"
  log "GPU metrics: the job runner starts them when its child starts (after the data and checkpoints are local)"
else
  log "warning: no CloudWatch agent at $cw_agent; the idle-GPU alarm cannot fire"
fi
done_phase

begin run
runner_started=1
export "$SPOT_SWEEP_ENV_SETUP_PHASES=$phases_file"
# A script's own requirements (script.requirements) are installed by the runner through the same wheel
# cache, under script/<digest>/ (spot_runner/requirements.py).
export SPOT_SWEEP_WHEEL_CACHE="$wheel_cache"
PYTHONPATH="$code_dir${PYTHONPATH:+:$PYTHONPATH}" "$python" -m spot_runner.job --job "$job_uri" --workdir "$workdir" \
  ${job_deadline:+--deadline "$job_deadline"} &
runner_pid=$!
set +e
wait "$runner_pid"
rc=$?
# A trapped signal interrupts wait (status > 128) while the runner is still saving its checkpoint.
while [ "$rc" -gt 128 ] && kill -0 "$runner_pid" 2>/dev/null; do
  wait "$runner_pid"
  rc=$?
done
set -e
log "phase run: the job runner exited with $rc after $((SECONDS - phase_started)) s"
exit "$rc"
