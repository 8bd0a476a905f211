#!/bin/sh
echo "hello from noarch"
