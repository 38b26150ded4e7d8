# The site's NATS server: the stock nats-server, built from its Go module as a
# static binary (deploy/images.sh), run with the configuration that
# `steward site nats-config` renders into the site's data volume.
FROM scratch
COPY rootfs/ /
EXPOSE 4222 6222
ENTRYPOINT ["/nats-server"]
CMD ["-c", "/data/nats.conf"]
