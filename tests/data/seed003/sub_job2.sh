#!/bin/bash

flux run -N1 sleep 30

