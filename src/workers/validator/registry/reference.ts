import { BadInputError } from '../../../errors/index.js';

/** An image reference split the way the Docker CLI reads it. */
export interface ImageReference {
  /** Host (and port) serving the registry API, e.g. `registry-1.docker.io`, `ghcr.io`, `localhost:5000`. */
  registry: string;
  /** Repository path in that registry, e.g. `library/nginx`, `materi/api`. */
  repository: string;
  /** Tag, when the reference has one (`latest` when it has neither tag nor digest). */
  tag?: string;
  /** Digest, e.g. `sha256:…`, when the reference pins one. */
  digest?: string;
  /** What the manifests endpoint is asked for: the digest when given, else the tag. */
  reference: string;
}

/** API host of Docker Hub; `docker.io` is only its name in references. */
export const DOCKER_HUB_REGISTRY = 'registry-1.docker.io';

// Grammar of github.com/distribution/reference.
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const REPOSITORY = new RegExp(`^${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`);
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;
const HOST =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::\d{1,5})?$/;

/**
 * Parses an image reference with Docker's defaults: no registry → Docker Hub
 * (`registry-1.docker.io`), a one-part Docker Hub name → `library/<name>`, no tag → `latest`.
 * The first path part names a registry when it has a `.` or `:` or is `localhost`.
 * Throws {@link BadInputError} naming the reference when it is malformed.
 *
 * @example
 * parseImageReference('nginx') // { registry: 'registry-1.docker.io', repository: 'library/nginx', tag: 'latest', … }
 * parseImageReference('host:5000/app@sha256:…') // { registry: 'host:5000', repository: 'app', digest: 'sha256:…', … }
 */
export function parseImageReference(text: string): ImageReference {
  const fail = (problem: string): never => {
    throw new BadInputError(`invalid image reference "${text}": ${problem}`);
  };
  let rest = text.trim();
  if (rest === '') fail('empty');
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) fail(`digest "${digest}" is not <algorithm>:<hex>`);
  }
  let tag: string | undefined;
  const lastColon = rest.lastIndexOf(':');
  if (lastColon > rest.lastIndexOf('/')) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!TAG.test(tag)) fail(`tag "${tag}" is not valid`);
  }
  let registry = 'docker.io';
  let repository = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (
      first.includes('.') ||
      first.includes(':') ||
      first === 'localhost' ||
      first !== first.toLowerCase()
    ) {
      if (!HOST.test(first)) fail(`registry "${first}" is not a host name`);
      registry = first;
      repository = rest.slice(slash + 1);
    }
  }
  if (registry === 'docker.io' || registry === 'index.docker.io') {
    registry = DOCKER_HUB_REGISTRY;
    if (!repository.includes('/')) repository = `library/${repository}`;
  }
  if (!REPOSITORY.test(repository)) {
    fail(`repository "${repository}" must be lowercase letters, digits and separators`);
  }
  if (tag === undefined && digest === undefined) tag = 'latest';
  return { registry, repository, tag, digest, reference: digest ?? tag! };
}

/** Whether a registry host is this machine (then plain HTTP is used, as Docker does). */
export function isLoopbackRegistry(registry: string): boolean {
  const host = registry.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
