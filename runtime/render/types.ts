/**
 * What a container receives from Tenantry: files uploaded into it, and how it starts.
 * Renderers produce this; constructs turn it into `upload` blocks and `entrypoint`/`command`;
 * the e2e drill runs exactly the same thing as local processes. Keeping one shape for all three
 * is what lets tests prove that a container gets exactly what was rendered.
 */
export interface RenderedFile {
  /** Absolute path inside the container. */
  readonly path: string;
  /** Exact file content (no Terraform escaping: the construct layer escapes). */
  readonly content: string;
  /** Whether the file is a script the container executes. */
  readonly executable?: boolean;
}

export interface ContainerLaunch {
  readonly files: RenderedFile[];
  /** Replaces the image's entrypoint when set. */
  readonly entrypoint?: string[];
  /** The container's command (arguments to the entrypoint). */
  readonly command?: string[];
  /**
   * Names of the environment variables the container must receive (secrets among them).
   * The construct layer supplies their values; renderers never see secret values.
   */
  readonly env: string[];
}
