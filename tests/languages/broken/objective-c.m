@interface A
- (void)f
@end
int main(void) { return x; }
