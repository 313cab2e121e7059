import { resolveTemporalCli, temporalCliVersion, TemporalCliUnavailableError } from './temporal-cli.js';

try {
  const executable = await resolveTemporalCli({ log: (message) => console.log(message) });
  console.log(`Temporal CLI: ${executable} (${await temporalCliVersion(executable)})`);
} catch (err) {
  console.error(err instanceof TemporalCliUnavailableError ? err.message : err);
  process.exit(1);
}
