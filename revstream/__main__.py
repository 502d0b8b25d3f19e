from revstream.cli import main

raise SystemExit(main())
