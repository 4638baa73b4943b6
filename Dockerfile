# One image for every StreamFlix role: `streamflix serve`, `streamflix worker`, `streamflix migrate`.
# docker-compose.yml shows the whole deployment.

# The web client's player libraries (hls.js, dash.js) come from npm, pinned by package-lock.json.
FROM node:20-slim AS web
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# The wheel, built as anywhere else: setup.py's build step copies the player libraries from
# node_modules into it (and fails if they are missing), so the image holds what the wheel holds.
FROM python:3.11-slim AS wheel
WORKDIR /src
COPY pyproject.toml setup.py README.md package.json package-lock.json ./
COPY --from=web /src/node_modules ./node_modules
COPY server ./server
COPY transcoder ./transcoder
COPY catalog ./catalog
COPY auth ./auth
COPY packager ./packager
COPY media ./media
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim

# ffmpeg/ffprobe for probing and transcoding; nothing else from apt.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    STREAMFLIX_DATA_DIR=/var/lib/streamflix

WORKDIR /app
COPY --from=wheel /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels

# Not root: the server and worker need write access to their data dir only.
RUN useradd --system --uid 10001 --home-dir /var/lib/streamflix --create-home streamflix
USER streamflix
VOLUME ["/var/lib/streamflix"]

EXPOSE 8080
CMD ["streamflix", "serve", "--host", "0.0.0.0", "--port", "8080"]
