import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors/index.js';
import { loadSettings } from '../../src/runtime/config.js';
import { checkListenAddress, isLoopbackHost, localServerUrl } from '../../src/runtime/listen.js';

describe('listen address', () => {
  it('tells loopback addresses from the others', () => {
    for (const host of [
      '127.0.0.1',
      '127.3.2.1',
      '::1',
      '[::1]',
      'localhost',
      'LOCALHOST',
      '::ffff:127.0.0.1',
    ])
      expect(isLoopbackHost(host), host).toBe(true);
    for (const host of ['0.0.0.0', '::', '192.0.2.2', '10.0.0.1', 'fe80::1', 'materi.internal', '128.0.0.1'])
      expect(isLoopbackHost(host), host).toBe(false);
  });

  it('gives local clients a loopback URL for a wildcard address and the address itself otherwise', () => {
    expect(localServerUrl('0.0.0.0', 4600)).toBe('http://127.0.0.1:4600');
    expect(localServerUrl('::', 4600)).toBe('http://[::1]:4600');
    expect(localServerUrl('192.0.2.2', 8080)).toBe('http://192.0.2.2:8080');
    expect(localServerUrl('fd00::2', 8080)).toBe('http://[fd00::2]:8080');
    expect(localServerUrl('materi.internal', 80)).toBe('http://materi.internal:80');
  });

  it('derives the default MATERI_API_URL from MATERI_HOST', () => {
    expect(loadSettings({}).apiUrl).toBe('http://127.0.0.1:4600');
    expect(loadSettings({ MATERI_HOST: '0.0.0.0', MATERI_PORT: '8080' }).apiUrl).toBe(
      'http://127.0.0.1:8080',
    );
    expect(loadSettings({ MATERI_HOST: '192.0.2.2' }).apiUrl).toBe('http://192.0.2.2:4600');
    expect(loadSettings({ MATERI_HOST: '0.0.0.0', MATERI_API_URL: 'https://materi.example' }).apiUrl).toBe(
      'https://materi.example',
    );
  });

  it('refuses a non-loopback address without a token, with one line naming the settings', () => {
    const refused = () => checkListenAddress({ host: '0.0.0.0' });
    expect(refused).toThrow(ConfigError);
    expect(refused).toThrow(
      'MATERI_HOST=0.0.0.0 exposes the API beyond this machine without a token: set MATERI_API_TOKEN or MATERI_TOKENS_FILE',
    );
    expect(() => checkListenAddress({ host: '127.0.0.1' })).not.toThrow();
    expect(() => checkListenAddress({ host: '192.0.2.2', apiToken: 'secret' })).not.toThrow();
    expect(() => checkListenAddress({ host: '::', tokensFile: '/etc/materi/tokens.yaml' })).not.toThrow();
  });
});
