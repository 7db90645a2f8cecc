#!/usr/bin/env bash
# EKS AL2 node bootstrap (stand-in)
