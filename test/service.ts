import { inject } from 'vitest';
import { fromPrintedConfig } from '../scripts/offline/service';

/** The service as serverless.yml declares it (read once per run by the global set-up), on the unit tests' stage. */
export const devService = fromPrintedConfig(inject('printedService').dev);
/** The same on the stage serverless offline runs. */
export const offlineService = fromPrintedConfig(inject('printedService').offline);
