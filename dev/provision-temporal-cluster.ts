import { composePins, resolveTemporalServer, resolveTemporalUiServer } from './temporal-server.js';

// Builds (or finds in the cache) the Temporal server, SQL tool and UI server versions compose pins.
const log = (message: string) => console.log(message);
const pins = await composePins();
const startedAt = Date.now();
const server = await resolveTemporalServer(pins.server, { log });
const ui = await resolveTemporalUiServer(pins.ui, { log });
console.log(`Temporal server ${pins.server}: ${server.server}`);
console.log(`Temporal UI server ${pins.ui}: ${ui.uiServer}`);
console.log(`Ready in ${Math.round((Date.now() - startedAt) / 1000)} s`);
