from fwgen.cli import main

raise SystemExit(main())
