# The operator's image: `perfpilot run` on the package alone (the simulator's plot extra is left out).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip install --no-cache-dir . && useradd --uid 10001 --no-create-home perfpilot
USER 10001
ENTRYPOINT ["perfpilot"]
CMD ["run"]
