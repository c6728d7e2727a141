/**
 * Secret values resolved during one piece of work (a check run, a send), so that every message
 * that leaves it — results, errors, logs — can be masked. A resolved URL's password counts too.
 */
export class SecretMask {
  private readonly secrets = new Set<string>();

  /** Remembers a resolved value (and, for a URL, its password) as secret. */
  remember(value: string): void {
    this.secrets.add(value);
    try {
      const url = new URL(value);
      if (url.password) {
        this.secrets.add(url.password);
        this.secrets.add(decodeURIComponent(url.password));
      }
    } catch {
      // Not a URL.
    }
  }

  /** The text with every remembered secret (four characters or more) replaced by `***`. */
  mask(text: string): string {
    let masked = text;
    // Longest first, so a URL is masked whole before its password is looked for.
    for (const secret of [...this.secrets].sort((a, b) => b.length - a.length)) {
      if (secret.length >= 4) masked = masked.split(secret).join('***');
    }
    return masked;
  }
}
