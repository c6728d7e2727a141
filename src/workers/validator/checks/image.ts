import { z } from 'zod';
import type { MateriError } from '../../../errors/index.js';
import { findReferences } from '../../../runtime/references.js';
import { CheckFailure, checkItemSettings, defineValidationCheck } from '../check.js';
import { lookupManifest, RegistryRequestError } from '../registry/client.js';
import { parseImageReference } from '../registry/reference.js';

const imageItem = z
  .strictObject({
    /** Service the image belongs to; names the result (`image:<service>`). */
    service: z.string().min(1).optional(),
    /** Image reference, e.g. `ghcr.io/materi/api:v1.4.2` or `nginx@sha256:…`. */
    image: z.string().min(1),
    /** Registry credentials; usually `${NAME}` references. */
    auth: z.strictObject({ username: z.string().min(1), password: z.string().min(1) }).optional(),
    /** Plain HTTP instead of HTTPS (loopback registries always use HTTP). */
    insecure: z.boolean().optional(),
    ...checkItemSettings,
  })
  .superRefine((item, context) => {
    // A reference resolved later cannot be checked now; a literal one can, and a typo in the plan
    // is a bad spec rather than a failed check.
    if (findReferences(item.image).length > 0) return;
    try {
      parseImageReference(item.image);
    } catch (error) {
      context.addIssue({ code: 'custom', path: ['image'], message: (error as Error).message });
    }
  });

export type ImageCheckItem = z.infer<typeof imageItem>;

/**
 * `images`: every image exists in its registry (OCI distribution API, anonymous or with the
 * registry's Bearer/Basic challenge). Fails with "image <ref> not found" on 404.
 */
export const imageCheck = defineValidationCheck<ImageCheckItem>({
  key: 'images',
  kind: 'image',
  item: imageItem,
  name: (item) => `image:${item.service ?? item.image}`,
  async run(item, context) {
    const image = context.resolve(item.image);
    const credentials = item.auth
      ? { username: context.resolve(item.auth.username), password: context.resolve(item.auth.password) }
      : undefined;
    let ref: ReturnType<typeof parseImageReference>;
    try {
      ref = parseImageReference(image);
    } catch (error) {
      throw new CheckFailure((error as MateriError).message);
    }
    let lookup: Awaited<ReturnType<typeof lookupManifest>>;
    try {
      lookup = await lookupManifest(ref, { credentials, insecure: item.insecure, signal: context.signal });
    } catch (error) {
      if (error instanceof RegistryRequestError) throw new CheckFailure(`image ${image}: ${error.message}`);
      throw error;
    }
    if (lookup.found) {
      return { passed: true, message: `image ${image} found${lookup.digest ? ` (${lookup.digest})` : ''}` };
    }
    switch (lookup.reason) {
      case 'not-found':
        return { passed: false, message: `image ${image} not found` };
      case 'unauthorized':
      case 'forbidden':
        return { passed: false, message: `cannot read image ${image}: ${lookup.detail}` };
      default:
        return { passed: false, message: `cannot check image ${image}: ${lookup.detail}` };
    }
  },
});
