# The operator's container (and the lab's init step): the steward CLI with
# busybox (static) for a shell, and the lab's scripts in /opt/steward.
FROM scratch
COPY rootfs/ /
ENV PATH=/bin HOME=/root
CMD ["/bin/sh", "/opt/steward/operator.sh"]
