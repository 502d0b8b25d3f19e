# syntax=docker/dockerfile:1
# revstream: one image for every pipeline service; pick the service with the command, e.g.
#   docker run revstream run processor      (default: run ingest)
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    REVSTREAM_DATA_DIR=/var/lib/revstream

WORKDIR /app

# Dependencies first, from pyproject.toml only, so editing the code does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then the project itself, editable: the code reads deploy/ (migrations, DDL) from /app at runtime.
COPY README.md ./
COPY schemas ./schemas
COPY revstream ./revstream
COPY ingest ./ingest
COPY processors ./processors
COPY sinks ./sinks
COPY deploy ./deploy
RUN pip install --no-cache-dir -e .

RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/revstream --no-create-home revstream \
    && mkdir -p /var/lib/revstream \
    && chown revstream:revstream /var/lib/revstream
USER revstream

EXPOSE 8000
ENTRYPOINT ["revstream"]
CMD ["run", "ingest"]
