from multiprocessing import Pool
import os

def calc_product(num1, num2, num3):
    print(f"Process {os.getpid()} calculating product of {num1, num2, num3}")
    return num1*num2*num3

def exec_func(nums):
    """Intermediate method to call calc_product method"""
    return calc_product(*nums)

if __name__ == "__main__":
    with Pool(4) as p:
        result = p.map(exec_func, [(1,2,3),(3,4,5)])
    print(f"Result is: {result}")
