from pseudovad.cli import main

raise SystemExit(main())
