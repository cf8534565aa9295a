/* Guards against a build that selected neither implementation. */
#if HOTSPOTD_GPIOD_API != 1 && HOTSPOTD_GPIOD_API != 2
#error "HOTSPOTD_GPIOD_API must be 1 (libgpiod 1.x) or 2 (libgpiod 2.x)"
#endif
