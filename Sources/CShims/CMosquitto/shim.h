#ifndef HOTSPOTD_CMOSQUITTO_H
#define HOTSPOTD_CMOSQUITTO_H
#include <mosquitto.h>
#endif
