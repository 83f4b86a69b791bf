import { Image } from '@cdktf/provider-docker/lib/image';
import { Construct } from 'constructs';

/**
 * One `docker_image` per distinct image reference in an environment, created the first time a
 * tenant asks for it. Containers use the image ID, so a re-tagged image upstream shows in the plan.
 */
export class EnvironmentImages extends Construct {
  private readonly images = new Map<string, Image>();

  /** The image ID for `reference`, pulling it into the environment's Docker host. */
  use(reference: string): string {
    let image = this.images.get(reference);
    if (!image) {
      image = new Image(this, reference.replace(/[^A-Za-z0-9]+/g, '-'), { name: reference, keepLocally: true });
      this.images.set(reference, image);
    }
    return image.imageId;
  }
}
