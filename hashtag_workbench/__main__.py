from hashtag_workbench.jobs.cli import main

raise SystemExit(main())
