/**
 * Reads a required environment variable once, at cold start. The constructs set every variable
 * a handler reads, so a missing one is a deployment bug: fail loudly with its name.
 */
export function requireEnv(name: string, env: NodeJS.ProcessEnv = process.env): string {
  const value = env[name];
  if (value === undefined || value === '') {
    throw new Error(`Environment variable ${name} is not set; the function's construct sets it, so redeploy the sweep stack.`);
  }
  return value;
}
