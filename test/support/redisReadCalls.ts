/**
 * How many reads a reader made on a node, from its `INFO commandstats`: the
 * reader calls its functions (FCALL_RO), or, while a node lacks the function
 * library (a replica that has not received it yet), the same code as scripts
 * (EVALSHA_RO, EVAL_RO). Counting FCALL_RO alone missed a read served by a
 * replica under load.
 */
export function readCommandCalls(commandstats: string): number {
  let calls = 0;
  for (const command of ['fcall_ro', 'evalsha_ro', 'eval_ro']) calls += Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(commandstats)?.[1] ?? 0);
  return calls;
}
