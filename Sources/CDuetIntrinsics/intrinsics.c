#include "CDuetIntrinsics.h"
