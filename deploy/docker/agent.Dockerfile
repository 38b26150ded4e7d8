# A lab client machine: steward-agent with busybox (static), so that a
# remote shell has something to run.
FROM scratch
COPY rootfs/ /
ENV PATH=/bin HOME=/root
CMD ["/bin/sh", "/opt/steward/agent.sh"]
