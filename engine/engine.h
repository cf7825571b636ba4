/*
 * engine/engine.h: synchronising calendars: change detection, planning busy
 * blocks, the outbox and its drain. (Work in progress: see engine/plan.h for
 * the pure planner.)
 */
#ifndef BM_ENGINE_ENGINE_H
#define BM_ENGINE_ENGINE_H

#include "engine/plan.h"

#endif
