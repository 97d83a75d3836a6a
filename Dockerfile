# One image for every SorAPI process; docker-compose.yml picks the command.
# Render workers need a CUDA build of torch: build with --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128
FROM python:3.11-slim AS base
ARG TORCH_INDEX=""
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY sorapi ./sorapi
COPY api ./api
COPY workflows ./workflows
COPY activities ./activities
COPY workers ./workers
RUN if [ -n "$TORCH_INDEX" ]; then pip install torch --index-url "$TORCH_INDEX"; fi \
 && pip install '.[render]'
RUN useradd --create-home sorapi
USER sorapi
EXPOSE 8000
CMD ["sorapi", "api", "--host", "0.0.0.0"]
