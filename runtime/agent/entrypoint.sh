#!/bin/sh
# The backup volume may be a bind path that Docker created as root:root 0755 on first use; the
# agent itself runs unprivileged. As root: hand the volume's top directory to the agent's user,
# then drop to that user. Started as any other user (docker run --user), run the agent as is.
set -eu
backups="${TENANTRY_BACKUP_DIR:-/backups}"
if [ "$(id -u)" = "0" ]; then
  chown tenantry:tenantry "$backups"
  exec su-exec tenantry:tenantry tenantry-agent "$@"
fi
exec tenantry-agent "$@"
