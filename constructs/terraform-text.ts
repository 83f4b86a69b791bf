import type { ContainerUpload } from '@cdktf/provider-docker/lib/container';
import type { RenderedFile } from '../runtime/render/types';

/**
 * Terraform reads `${…}` and `%{…}` in any string as template syntax, so a shell script's
 * `${VAR:-x}` would be evaluated by Terraform instead of reaching the container. Doubling the
 * introducer (`$${`, `%%{`) is Terraform's escape: the container receives the original text.
 * cdktf's own token markers (`${TfToken[…]}`) are left alone so that references still resolve.
 */
export function escapeTerraformTemplate(text: string): string {
  // Replacement functions, not strings: in a replacement string "$$" means one "$".
  return text.replace(/\$\{(?!TfToken\[)/g, () => '$${').replace(/%\{/g, () => '%%{');
}

/** The inverse of escapeTerraformTemplate: what Terraform hands to the provider. */
export function unescapeTerraformTemplate(text: string): string {
  return text.replace(/\$\$\{/g, () => '${').replace(/%%\{/g, () => '%{');
}

/** Rendered files as `upload` blocks, sorted by path so the plan never reorders them. */
export function uploadBlocks(files: readonly RenderedFile[]): ContainerUpload[] {
  return [...files]
    .sort((a, b) => a.path.localeCompare(b.path))
    .map((f) => ({ file: f.path, content: escapeTerraformTemplate(f.content), executable: f.executable ?? false }));
}
