from molstrata.cli import main

raise SystemExit(main())
