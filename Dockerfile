# The image every conveyor pod runs: the operator (`conveyor-operator`) and the workers (`conveyor worker`).
#
# The base is a minimal Debian bookworm with python3 (3.11) and python3-venv. `scripts/image.sh build` makes it
# locally with debootstrap (no container registry needed) and then builds this file; any image with the same
# two packages works too: docker build --build-arg BASE=your/bookworm-python3-venv-image .
#
# Your workflow's image starts from this one; the Workflow manifest's `image` names it and its `entrypoint`
# (module:attribute) is imported from /app, the working directory:
#
#   FROM conveyor:0.1.0
#   COPY --chown=10001:10001 orders/ /app/orders/
#   # dependencies of your own code, if any (the venv is on PATH and writable by root only):
#   #   USER root
#   #   RUN pip install --no-cache-dir -r /app/orders/requirements.txt
#   #   USER 10001:10001
#   # the operator runs it as `conveyor worker ...`; try it with: docker run --rm IMAGE conveyor graph orders.workflow:builder
ARG BASE=conveyor-base:bookworm-python3.11
FROM ${BASE}

# Which extras of pyproject.toml go in: the operator and the workers need them all (Postgres, Kafka, Kubernetes).
ARG EXTRAS=all

ENV VIRTUAL_ENV=/opt/conveyor \
    PATH=/opt/conveyor/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LANG=C.UTF-8

RUN python3 -m venv "$VIRTUAL_ENV" \
 && groupadd --gid 10001 conveyor \
 && useradd --uid 10001 --gid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin conveyor \
 && install -d -o 10001 -g 10001 /app

# Dependencies first: this layer is rebuilt only when pyproject.toml changes, not on every code change.
WORKDIR /src
COPY pyproject.toml ./
COPY scripts/pyproject_requirements.py scripts/
RUN python scripts/pyproject_requirements.py "$EXTRAS" >/tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# Then the code (.dockerignore lets in only README.md, runtime/ and operator/ besides the files above), installed
# without dependencies: they are all in the layer above.
COPY . ./
RUN pip install --no-deps --no-build-isolation . \
 && cd / && rm -rf /src \
 && conveyor --version

WORKDIR /app
USER 10001:10001
EXPOSE 8080
CMD ["conveyor", "--help"]
