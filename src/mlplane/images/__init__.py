"""Building the process images: their definitions and locks (`definitions`, `lock`), the Debian
base (`rootfs`), mlplane's own wheel (`wheel`), the build contexts (`stage`) and a client of the
registry's HTTP API (`registry`). See model/images.py for what each image holds."""
