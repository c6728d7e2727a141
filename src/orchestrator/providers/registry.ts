import { createCommandProvider } from './command.js';
import { createHttpProvider } from './http.js';
import { createLocalProvider } from './local.js';
import { createRailwayProvider } from './railway.js';
import type { ProviderConfig } from './settings.js';
import type { StageProvider } from './types.js';
import { createVercelProvider } from './vercel.js';

/** The provider for a stage's validated `provider` settings, by `type`. */
export function createProvider(config: ProviderConfig): StageProvider {
  switch (config.type) {
    case 'command':
      return createCommandProvider(config);
    case 'http':
      return createHttpProvider(config);
    case 'vercel':
      return createVercelProvider(config);
    case 'railway':
      return createRailwayProvider(config);
    case 'local':
      return createLocalProvider(config);
  }
}
