from qiwi_gw.cli import main

raise SystemExit(main())
