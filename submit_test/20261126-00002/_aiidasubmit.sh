#!/bin/bash
exec > _scheduler-stdout.txt
exec 2> _scheduler-stderr.txt
#SBATCH --gres=gpu:1
#SBATCH --partition=gpu


'/work/main/.venv/bin/aiida-hip-worker' 'aiida.json'  > 'aiida.out'
