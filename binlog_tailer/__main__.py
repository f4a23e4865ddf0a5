from binlog_tailer.cli import main

raise SystemExit(main())
