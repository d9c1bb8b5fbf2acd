import { HafwError } from '@hafw/core'

// Its own module: views (used by verify and drill) throw it without loading Handlebars.
export class RenderError extends HafwError {
  constructor(message: string) {
    super(message, { exitCode: 1 })
    this.name = 'RenderError'
  }
}
