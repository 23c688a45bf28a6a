from composekit.entry import main

main()
