#!/usr/bin/env bash
# make images: the lab's images, every one FROM scratch (nothing is pulled):
#   steward/nats      nats-server, built from its Go module (static)
#   steward/steward   steward (static): the site's services
#   steward/operator  steward + busybox (static) + the lab scripts: the init step, the operator
#   steward/agent     steward-agent + busybox (static): a client machine with a shell
# The binaries are built here (CGO_ENABLED=0), each image's root file system is
# staged under bin/images/<name>/rootfs, and docker builds it with
# deploy/docker/<name>.Dockerfile. Tag: $STEWARD_IMAGE_TAG (default lab).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
TAG=${STEWARD_IMAGE_TAG:-lab}
BUSYBOX=${BUSYBOX:-/bin/busybox}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
LDFLAGS="-s -w -X github.com/stewardhq/steward/services/cli.Version=$VERSION -X github.com/stewardhq/steward/agent/cli.Version=$VERSION"
out=bin/images

if ! [ -x "$BUSYBOX" ] && [ "$BUSYBOX" = /bin/busybox ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "images: installing busybox-static"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null; }
fi
if ! [ -x "$BUSYBOX" ] || ! "$BUSYBOX" --list >/dev/null 2>&1; then
  echo "images: $BUSYBOX is missing: install busybox-static (apt-get install busybox-static)" >&2
  exit 1
fi
if ldd "$BUSYBOX" >/dev/null 2>&1; then
  echo "images: $BUSYBOX is dynamically linked; the images need busybox-static" >&2
  exit 1
fi

echo "images: building static binaries"
mkdir -p bin
export CGO_ENABLED=0
"$GO" build -trimpath -ldflags "$LDFLAGS" -o bin/steward ./services/cmd/steward
"$GO" build -trimpath -ldflags "$LDFLAGS" -o bin/steward-agent ./agent/cmd/steward-agent
(cd services && "$GO" build -trimpath -ldflags "-s -w" -o ../bin/nats-server github.com/nats-io/nats-server/v2)

rm -rf "$out"
stage() { mkdir -p "$out/$1/rootfs/$2"; }

# busybox into a root file system, with a link per applet.
with_busybox() {
  local root=$out/$1/rootfs
  mkdir -p "$root/bin" "$root/etc" "$root/root" "$root/tmp" "$root/opt/steward"
  chmod 1777 "$root/tmp"
  cp "$BUSYBOX" "$root/bin/busybox"
  for applet in $("$BUSYBOX" --list); do
    case $applet in
      busybox | rpm | rpm2cpio | dpkg | dpkg-deb) continue ;; # not package managers the inventory should trust
    esac
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
  done
  cp deploy/lab/passwd deploy/lab/group "$root/etc/"
}

stage nats ""
cp bin/nats-server "$out/nats/rootfs/nats-server"

stage steward bin
mkdir -p "$out/steward/rootfs/tmp" && chmod 1777 "$out/steward/rootfs/tmp"
cp bin/steward "$out/steward/rootfs/bin/steward"

with_busybox operator
cp bin/steward "$out/operator/rootfs/bin/steward"
cp deploy/lab/init.sh deploy/lab/operator.sh deploy/lab/hook.cgi deploy/lab/burst.sh "$out/operator/rootfs/opt/steward/"

with_busybox agent
cp bin/steward-agent "$out/agent/rootfs/bin/steward-agent"
cp deploy/lab/agent.sh "$out/agent/rootfs/opt/steward/"
cp deploy/lab/os-release "$out/agent/rootfs/etc/os-release"

for name in nats steward operator agent; do
  echo "images: steward/$name:$TAG"
  docker build -q -t "steward/$name:$TAG" -f "deploy/docker/$name.Dockerfile" "$out/$name" 2> >(grep -v -e DEPRECATED -e 'legacy builder' -e buildx -e 'docs.docker.com' -e '^ *$' >&2) >/dev/null
done
docker images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E "^steward/(nats|steward|operator|agent):$TAG " | sed 's/^/  /' || true
