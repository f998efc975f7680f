// Runs as a classic script in <head>, before the body is parsed and
// painted: the colour theme (see theme.js). The rest of the page is
// main.js, a module that runs after parsing.
import { applyTheme, followSystem } from "./theme.js";

applyTheme();
followSystem();
