/** The drill's report: steps in order, each passed or failed, with its figures. */

export interface StepResult {
  name: string;
  ok: boolean;
  /** Lines of figures and observations. */
  details: string[];
  error?: string;
  ms: number;
}

export interface DrillReport {
  ok: boolean;
  /** The translation table as printed. */
  translation: string;
  steps: StepResult[];
}

export class Steps {
  readonly results: StepResult[] = [];

  constructor(private readonly print: (line: string) => void) {}

  /**
   * Runs one step; `f` adds detail lines and throws to fail. A failed step is recorded and, when
   * `required`, rethrown so that the steps depending on it do not run.
   */
  async run(name: string, f: (detail: (line: string) => void) => Promise<void>, required = false): Promise<boolean> {
    const details: string[] = [];
    const started = Date.now();
    let error: string | undefined;
    try {
      await f((line) => details.push(line));
    } catch (e) {
      error = e instanceof Error ? e.message : String(e);
    }
    const result: StepResult = { name, ok: error === undefined, details, error, ms: Date.now() - started };
    this.results.push(result);
    this.print(formatStep(result));
    if (error !== undefined && required) throw new StepFailed(name);
    return error === undefined;
  }
}

export class StepFailed extends Error {
  constructor(step: string) {
    super(`step "${step}" failed; the steps that depend on it were not run`);
  }
}

export function formatStep(step: StepResult): string {
  const head = `${step.ok ? 'PASS' : 'FAIL'}  ${step.name}  (${(step.ms / 1000).toFixed(1)} s)`;
  const lines = step.details.map((d) => `      ${d}`);
  if (step.error) lines.push(...step.error.split('\n').map((l, i) => `      ${i === 0 ? 'error: ' : '       '}${l}`));
  return [head, ...lines].join('\n');
}
