#!/usr/bin/env bash
# Scout in bf16 over two nodes with vLLM's Ray backend: tensor parallel inside a node, pipeline parallel across.
#   head node:    deploy/multi-node.sh head
#   each worker:  deploy/multi-node.sh worker HEAD_IP
#   then, on the head: deploy/multi-node.sh serve   (serves http://HEAD:8000/v1; point a models-file member at it)
set -euo pipefail
case "${1:?usage: multi-node.sh head | worker HEAD_IP | serve}" in
  head)   ray start --head --port 6379 ;;
  worker) ray start --address "${2:?HEAD_IP}:6379" ;;
  serve)  vllm serve meta-llama/Llama-4-Scout-17B-16E-Instruct --port 8000 \
            --tensor-parallel-size "${GPUS_PER_NODE:-8}" --pipeline-parallel-size "${NODES:-2}" \
            --distributed-executor-backend ray --max-model-len 65536 --limit-mm-per-prompt '{"image": 4}' ;;
  *) echo "unknown step: $1" >&2; exit 2 ;;
esac
