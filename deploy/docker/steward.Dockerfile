# A site service: the static steward binary alone. Compose runs one service
# per container: steward serve --services X --server nats://... --data /data
FROM scratch
COPY rootfs/ /
ENTRYPOINT ["/bin/steward"]
CMD ["--help"]
