"""Entry point for ``spark-submit``: ``dedup clean`` on the Spark engine, with spark-submit's master.

    spark-submit --master yarn ... "$(python -c 'import dedup.engines.submit as m; print(m.__file__)')" \
        clean s3a://bucket/corpus.jsonl.gz -o s3a://bucket/dedup-out
"""

import sys

from dedup.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["clean"] and "--engine" not in args:
        args += ["--engine", "spark"]
    raise SystemExit(main(args))
