# dbtools in a container: entrypoint `dbtools`, shipped model bank inside, non-root user.
#   docker build -t dbtools .                              # CPU build of PyTorch (small image)
#   docker build -t dbtools:cuda --build-arg TORCH=cuda .  # CUDA build of PyTorch
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY dbtools ./dbtools
COPY cli ./cli
COPY models ./models
RUN pip wheel --no-deps -w /wheels .

FROM python:${PYTHON_VERSION}-slim
ARG TORCH=cpu
ARG TORCH_VERSION=2.13.0
# cpu: PyTorch's CPU-only wheel index; cuda: the default PyPI wheels (bundle CUDA libraries)
RUN if [ "$TORCH" = "cpu" ]; then \
        pip install --no-cache-dir "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu; \
    elif [ "$TORCH" = "cuda" ]; then \
        pip install --no-cache-dir "torch==${TORCH_VERSION}"; \
    else echo "TORCH must be cpu or cuda" >&2; exit 1; fi
# a C compiler: dbtools builds its fused CPU pooling kernel for the host CPU on first use
# (without one it still runs, on the slower torch path)
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && useradd --create-home --uid 1000 dbtools
USER dbtools
WORKDIR /data
ENTRYPOINT ["dbtools"]
CMD ["--help"]
