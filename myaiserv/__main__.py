from myaiserv.cli import main

main()
