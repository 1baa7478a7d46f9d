import { METRICS } from '../contract';
import { HOST_MEMORY_METRIC } from '../monitoring/metrics';

/**
 * The CloudWatch agent configuration of a training instance: host metrics tagged with the instance's
 * Auto Scaling group (base config, loaded at boot by the launch template's user data) and the job's
 * log files (logs config, appended at boot and again by the train document). bootstrap.sh appends the
 * `nvidia_gpu` metrics when the job starts.
 * @see https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch-Agent-Configuration-File-Details.html
 * @see https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/install-CloudWatch-Agent-commandline-fleet.html
 */

/** The agent's control script on the DLAMIs (and wherever the amazon-cloudwatch-agent package installs it). */
export const AGENT_CTL = '/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl';
/** Where the configuration files are written on the instance. */
export const AGENT_CONFIG_DIR = '/opt/spot-sweep';
/**
 * The logs config's file name. The train document appends the same file name later, so the agent keeps
 * one copy of the log configuration, not two.
 */
export const AGENT_LOGS_FILE = `${AGENT_CONFIG_DIR}/cloudwatch-logs.json`;
const AGENT_BASE_FILE = `${AGENT_CONFIG_DIR}/cloudwatch-base.json`;

/**
 * Metrics every minute, namespace `CWAgent`, each carrying the group and instance, and also aggregated
 * by the group alone (the idle alarm and the dashboard read that aggregate). `${aws:AutoScalingGroupName}`
 * is the agent's own placeholder for the instance's group.
 */
export function agentBaseConfig(): object {
  return {
    agent: { metrics_collection_interval: 60 },
    metrics: {
      namespace: METRICS.agentNamespace,
      append_dimensions: { [METRICS.dimensions.group]: '${aws:AutoScalingGroupName}', InstanceId: '${aws:InstanceId}' },
      aggregation_dimensions: [[METRICS.dimensions.group]],
      // Host memory: cheap, and the first thing to look at when a data set does not fit.
      metrics_collected: { mem: { measurement: [HOST_MEMORY_METRIC] } },
    },
  };
}

/** Every `*.log` file of `logDir` to the log group, one stream per instance, as one line of JSON. */
export function agentLogsConfigJson(logDir: string, logGroupName: string): string {
  const config = {
    logs: {
      logs_collected: {
        files: {
          collect_list: [{ file_path: `${logDir}/*.log`, log_group_name: '__LOG_GROUP__', log_stream_name: '{instance_id}', timezone: 'UTC' }],
        },
      },
    },
  };
  // The group name is a token until synthesis: put it in after stringifying, as it is.
  return JSON.stringify(config).replace('__LOG_GROUP__', logGroupName);
}

/**
 * User-data commands that write both configs and start the agent with them at boot. A boot without the
 * agent is logged to `logDir/boot.log` and goes on (no GPU metrics then, so the idle alarm stays quiet).
 */
export function cloudWatchAgentCommands(props: { readonly logDir: string; readonly logGroupName: string }): string[] {
  return [
    `ctl=${AGENT_CTL}`,
    // The DLAMIs ship the agent; the package is in the Amazon Linux repositories otherwise.
    'if [ ! -x "$ctl" ]; then dnf install -y -q amazon-cloudwatch-agent || yum install -y -q amazon-cloudwatch-agent || true; fi',
    `cat > ${AGENT_BASE_FILE} <<'CW_BASE'`,
    JSON.stringify(agentBaseConfig()),
    'CW_BASE',
    `cat > ${AGENT_LOGS_FILE} <<'CW_LOGS'`,
    agentLogsConfigJson(props.logDir, props.logGroupName),
    'CW_LOGS',
    'if [ -x "$ctl" ]; then',
    `  "$ctl" -a fetch-config -m ec2 -c file:${AGENT_BASE_FILE} &&`,
    `    "$ctl" -a append-config -m ec2 -s -c file:${AGENT_LOGS_FILE} ||`,
    `    echo "spot-sweep: the CloudWatch agent did not start; no GPU metrics (the idle alarm stays quiet)" >> ${props.logDir}/boot.log`,
    'fi',
  ];
}
