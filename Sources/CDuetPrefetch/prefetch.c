#include "CDuetPrefetch.h"
