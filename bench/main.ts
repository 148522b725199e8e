// How every bench script ends: exit 0 when its main resolves, else the error's stack on stderr
// and exit 1 (child processes and timers it leaves behind do not keep it alive).
export function runMain(label: string, main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(`${label} failed: ${err instanceof Error ? err.stack : String(err)}`);
      process.exit(1);
    },
  );
}
